// Child process: the producer side of the rollout-path benchmark (what
// rollout workers do with finished groups). Told over IPC which system to
// feed; reports the enqueue time of every group when done.
//
//   tandem  admit (RolloutQueue.admit, the staleness contract's admission),
//           encodePromptGroup (validate + encode), RolloutQueue.complete
//   bullmq  Queue.add with the group as JSON (number arrays)
//   raw     PromptGroup.encode + LPUSH
//   tandem-full  what a rollout worker does: take the admitted prompt's
//           BullMQ job (the control plane's admitter admitted it and
//           enqueued the job), encodePromptGroup, RolloutQueue.complete
//
// Every system is held to the same window: at most `window` groups
// enqueued and not yet in a batch delivered to the trainer (credits come
// back from the consumer through the parent). Tandem's admission enforces
// the same bound itself (queue capacity).
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { PromptGroup } from '@tandem/protocol';
import { PromptQueue, RolloutStore, encodePromptGroup, runKeys } from '@tandem/rollout-queue';
import { nowMs } from './common.mjs';
import { groupContents, jsonGroup, promptGroup } from './workload.mjs';

let credits = 0;
let creditWaiters = [];

function addCredits(n) {
  credits += n;
  const waiters = creditWaiters;
  creditWaiters = [];
  for (const w of waiters) w();
}

async function takeCredit() {
  while (credits <= 0) await new Promise((resolve) => creditWaiters.push(resolve));
  credits--;
}

/** tandem-full: completes the groups the control plane admitted, as they arrive on the prompt queue. */
async function completeAdmitted(cfg) {
  const pool = groupContents(cfg);
  const enqueued = [];
  const store = await RolloutStore.create({ redisUrl: cfg.redisUrl });
  const queue = store.forRun(cfg.runId);
  const prompts = new PromptQueue({ prefix: runKeys(cfg.runId).bullPrefix, connection: { url: cfg.redisUrl } });
  const limits = { groupSize: cfg.groupSize, maxTokens: cfg.tokensPerCompletion };
  let go;
  const gone = new Promise((resolve) => (go = resolve));
  let started = 0;
  let seq = 0;
  let finish;
  const allDone = new Promise((resolve) => (finish = resolve));
  const worker = prompts.worker(
    async (job) => {
      await gone;
      const i = seq++;
      if (cfg.rate) {
        const wait = started + (i * 1000) / cfg.rate - nowMs();
        if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
      }
      const { groupId, policyVersion, targetStep } = job.data;
      const t = nowMs();
      const group = promptGroup(pool[i % pool.length], { groupId, policyVersion, targetStep });
      await queue.complete(encodePromptGroup(group, limits));
      enqueued.push([groupId, t]);
      if (enqueued.length >= cfg.groups) finish();
    },
    { concurrency: cfg.producerConcurrency, autorun: false },
  );
  await worker.waitUntilReady();
  void worker.run();
  process.send({ type: 'ready' });
  await new Promise((resolve) => process.once('message', (m) => m.type === 'go' && resolve()));
  const cpuAtGo = process.cpuUsage();
  const faultsAtGo = process.resourceUsage().minorPageFault;
  started = nowMs();
  go();
  await allDone;
  const finished = nowMs();
  const cpu = process.cpuUsage(cpuAtGo);
  const faults = process.resourceUsage().minorPageFault - faultsAtGo;
  await worker.close();
  await prompts.close();
  await store.close();
  process.send({ type: 'done', enqueued, started, finished, cpu, faults }, () => process.exit(0));
}

async function produce(cfg) {
  if (cfg.system === 'tandem-full') return completeAdmitted(cfg);
  const pool = groupContents(cfg);
  const enqueued = new Array(cfg.groups);
  let next = 0;
  let close = async () => {};
  let produceOne;
  if (cfg.system === 'tandem') {
    const store = await RolloutStore.create({ redisUrl: cfg.redisUrl });
    const queue = store.forRun(cfg.runId);
    const limits = { groupSize: cfg.groupSize, maxTokens: cfg.tokensPerCompletion };
    produceOne = async (i) => {
      const attempt = await queue.admit({ timeoutMs: 60_000 });
      if (attempt.kind !== 'admitted') throw new Error(`admission ended: ${attempt.state}`);
      const a = attempt.admission;
      const t = nowMs();
      const group = promptGroup(pool[i % pool.length], { groupId: a.groupId, policyVersion: a.policyVersion, targetStep: a.targetStep });
      await queue.complete(encodePromptGroup(group, limits));
      enqueued[i] = [a.groupId, t];
    };
    close = () => store.close();
  } else if (cfg.system === 'bullmq') {
    const queue = new Queue(cfg.queueName, {
      connection: { url: cfg.redisUrl },
      defaultJobOptions: { removeOnComplete: true, removeOnFail: true },
    });
    await queue.waitUntilReady();
    produceOne = async (i) => {
      const groupId = `g${i}`;
      const t = nowMs();
      await queue.add('group', jsonGroup(pool[i % pool.length], { groupId }));
      enqueued[i] = [groupId, t];
    };
    close = () => queue.close();
  } else if (cfg.system === 'raw') {
    const redis = new Redis(cfg.redisUrl);
    produceOne = async (i) => {
      const groupId = `g${i}`;
      const t = nowMs();
      const bytes = PromptGroup.encode(promptGroup(pool[i % pool.length], { groupId })).finish();
      await redis.lpush(cfg.queueName, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
      enqueued[i] = [groupId, t];
    };
    close = async () => redis.disconnect();
  } else {
    throw new Error(`unknown system ${cfg.system}`);
  }
  process.send({ type: 'ready' });
  await new Promise((resolve) => process.once('message', (m) => m.type === 'go' && resolve()));
  const cpuAtGo = process.cpuUsage();
  const faultsAtGo = process.resourceUsage().minorPageFault;
  const started = nowMs();
  // Open loop at `rate` groups/s when given (group i is due at i / rate),
  // else closed loop: as fast as the window allows.
  const lane = async () => {
    for (;;) {
      const i = next++;
      if (i >= cfg.groups) return;
      if (cfg.rate) {
        const due = started + (i * 1000) / cfg.rate;
        const wait = due - nowMs();
        if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
      }
      await takeCredit();
      await produceOne(i);
    }
  };
  await Promise.all(Array.from({ length: cfg.producerConcurrency }, lane));
  const finished = nowMs();
  await close();
  process.send({ type: 'done', enqueued, started, finished, cpu: process.cpuUsage(cpuAtGo), faults: process.resourceUsage().minorPageFault - faultsAtGo }, () => process.exit(0));
}

// The parent is gone (crashed, killed): stop too.
process.on('disconnect', () => process.exit(1));

process.on('message', (msg) => {
  if (msg.type === 'credit') addCredits(msg.count);
  else if (msg.type === 'start') {
    credits = msg.config.window;
    produce(msg.config).catch((err) => {
      process.stderr.write(`producer failed: ${err?.stack ?? err}\n`);
      process.exit(1);
    });
  }
});
