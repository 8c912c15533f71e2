// Child process: `count` cheap HTTP servers on 127.0.0.1 with the vLLM
// admin routes the weight-sync coordinator drives (pause, resume,
// start/update/finish weight update, world size, init, health). The weight
// transfer is a collective: every /update_weights of a version answers
// `transferMs` after the last generator's call arrived (the trainer has
// started its broadcast by then; the coordinator tells it first). When all
// `count` generators have answered /resume for a sync, the time is reported
// to the parent over IPC.
import { createServer } from 'node:http';
import { nowMs } from './common.mjs';

const count = Number(process.argv[2]);
const transferMs = Number(process.argv[3]);

let updatesWaiting = [];
let resumed = 0;

function answer(res, body = {}) {
  const text = JSON.stringify(body);
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function handle(req, res) {
  const path = req.url.split('?')[0];
  // Bodies are small JSON; read them so keep-alive connections stay usable.
  req.resume();
  req.on('end', () => {
    switch (path) {
      case '/update_weights':
        updatesWaiting.push(res);
        if (updatesWaiting.length === count) {
          const waiting = updatesWaiting;
          updatesWaiting = [];
          setTimeout(() => waiting.forEach((r) => answer(r)), transferMs);
        }
        return;
      case '/resume':
        answer(res);
        if (++resumed === count) {
          resumed = 0;
          process.send({ type: 'resumed', t: nowMs() });
        }
        return;
      case '/get_world_size':
        answer(res, { world_size: 1 });
        return;
      case '/health':
      case '/pause':
      case '/start_weight_update':
      case '/finish_weight_update':
      case '/init_weight_transfer_engine':
        answer(res);
        return;
      default:
        res.writeHead(404).end();
    }
  });
}

const urls = [];
for (let i = 0; i < count; i++) {
  const server = createServer({ keepAliveTimeout: 600_000 }, handle);
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  urls.push(`http://127.0.0.1:${server.address().port}`);
}
process.send({ type: 'listening', urls });
process.on('disconnect', () => process.exit(0));
