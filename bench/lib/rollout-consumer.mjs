// Child process: the trainer side of the rollout-path benchmark. It takes
// batches of `batchGroups` groups, decodes every group (a trainer reads
// them all), and records the moment each group reached it in a complete
// batch: "delivery". After each batch it returns credits to the producer
// through the parent.
//
//   tandem  TrainerService PullBatch / AckBatch over gRPC against the real
//           control plane (the broker serves straight from Redis)
//   bullmq  a BullMQ Worker (job.data parsed from JSON), batches assembled
//           in the processor
//   raw     BRPOP of the binary payload, PromptGroup.decode
import { credentials } from '@grpc/grpc-js';
import { Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { BatchState, PromptGroup, TrainerServiceClient } from '@tandem/protocol';
import { nowMs } from './common.mjs';

function unary(client, method, request, deadlineMs) {
  return new Promise((resolve, reject) => {
    client[method](request, { deadline: Date.now() + deadlineMs }, (err, res) => (err ? reject(err) : resolve(res)));
  });
}

async function consume(cfg) {
  const delivered = [];
  let count = 0;
  let failed;
  let finish;
  const allDone = new Promise((resolve) => (finish = resolve));
  const check = (ok, what) => {
    if (!ok) failed ??= new Error(`bad group delivered: ${what}`);
  };
  /** A complete batch reached the trainer. */
  const deliver = (ids) => {
    const t = nowMs();
    for (const id of ids) delivered.push([id, t]);
    count += ids.length;
    process.send({ type: 'delivered', count: ids.length });
    if (count >= cfg.groups) finish();
  };
  const timing = { pull: 0, ack: 0, batches: 0 };
  let stop = async () => {};
  let run;
  if (cfg.system === 'tandem' || cfg.system === 'tandem-full') {
    const client = new TrainerServiceClient(cfg.grpcAddress, credentials.createInsecure(), {
      'grpc.max_receive_message_length': 256 * 1024 * 1024,
      // A 4 MiB batch through grpc-js's default 64 KiB HTTP/2 window takes
      // 64 window updates, each a round trip through two busy processes. A
      // Python trainer (grpcio) sizes its window from the measured
      // bandwidth-delay product; a fixed large window does the same here.
      'grpc-node.flow_control_window': 64 * 1024 * 1024,
    });
    run = async () => {
      for (let step = 0; count < cfg.groups; ) {
        const tp = nowMs();
        const res = await unary(client, 'pullBatch', { runId: cfg.runId, step, waitMs: 10_000 }, 30_000);
        timing.pull += nowMs() - tp;
        if (res.state === BatchState.BATCH_STATE_NOT_READY) continue;
        if (res.state !== BatchState.BATCH_STATE_READY) throw new Error(`pull of step ${step} answered state ${res.state}`);
        const ids = res.groups.map((bytes) => {
          const g = PromptGroup.decode(bytes);
          check(g.trajectories.length === cfg.groupSize && g.trajectories[0].tokenIds.byteLength === 4 * cfg.tokensPerCompletion, g.groupId);
          return g.groupId;
        });
        deliver(ids);
        const ta = nowMs();
        await unary(client, 'ackBatch', { runId: cfg.runId, step }, 30_000);
        timing.ack += nowMs() - ta;
        timing.batches++;
        step++;
      }
      finish();
    };
    stop = async () => client.close();
  } else if (cfg.system === 'bullmq') {
    let batch = [];
    const worker = new Worker(
      cfg.queueName,
      async (job) => {
        const g = job.data;
        check(g.trajectories.length === cfg.groupSize && g.trajectories[0].tokenIds.length === cfg.tokensPerCompletion, g.groupId);
        batch.push(g.groupId);
        if (batch.length >= cfg.batchGroups) {
          const full = batch;
          batch = [];
          deliver(full);
        }
      },
      { connection: { url: cfg.redisUrl }, concurrency: cfg.bullmqConcurrency, autorun: false },
    );
    await worker.waitUntilReady();
    run = async () => {
      void worker.run();
      await allDone;
    };
    stop = () => worker.close();
  } else if (cfg.system === 'raw') {
    const redis = new Redis(cfg.redisUrl);
    run = async () => {
      let batch = [];
      while (count < cfg.groups) {
        const [, bytes] = await redis.brpopBuffer(cfg.queueName, 0);
        const g = PromptGroup.decode(bytes);
        check(g.trajectories.length === cfg.groupSize && g.trajectories[0].tokenIds.byteLength === 4 * cfg.tokensPerCompletion, g.groupId);
        batch.push(g.groupId);
        if (batch.length >= cfg.batchGroups) {
          deliver(batch);
          batch = [];
        }
      }
    };
    stop = async () => redis.disconnect();
  } else {
    throw new Error(`unknown system ${cfg.system}`);
  }
  process.send({ type: 'ready' });
  await new Promise((resolve) => process.once('message', (m) => m.type === 'go' && resolve()));
  const cpuAtGo = process.cpuUsage();
  const faultsAtGo = process.resourceUsage().minorPageFault;
  await Promise.race([run(), allDone]);
  await allDone;
  await stop();
  if (failed) throw failed;
  // BENCH_DEBUG=1: where the trainer's time per batch goes (PullBatch includes waiting for the batch).
  if (timing.batches > 0 && process.env.BENCH_DEBUG) process.stderr.write(`trainer per batch: PullBatch ${(timing.pull / timing.batches).toFixed(1)} ms, AckBatch ${(timing.ack / timing.batches).toFixed(1)} ms\n`);
  process.send({ type: 'done', delivered, cpu: process.cpuUsage(cpuAtGo), faults: process.resourceUsage().minorPageFault - faultsAtGo }, () => process.exit(0));
}

// The parent is gone (crashed, killed): stop too.
process.on('disconnect', () => process.exit(1));

process.on('message', (msg) => {
  if (msg.type !== 'start') return;
  consume(msg.config).catch((err) => {
    process.stderr.write(`consumer failed: ${err?.stack ?? err}\n`);
    process.exit(1);
  });
});
