// How fast a processor's partitions are worked again after it dies (issue 17): a restarted
// instance must be projecting within 10 s of its restart, whether the old one was SIGKILLed
// (its group membership lingers until its session times out) or stopped with SIGTERM (it
// leaves the group on the way out). The measured seconds are printed.
import t from 'tap';
import { startTestLedger, type TestLedger } from './helpers/ledger.ts';
import { issued } from './helpers/events.ts';
import { spawnBin } from './helpers/outages.ts';
import { runBatchConsumer } from '../streams/batch-consumer.ts';

const TARGET_MS = 10_000;

async function projectedCount(l: TestLedger): Promise<number> {
  return (await l.rt.pool.query(`select count(*)::int as n from ledger_events where event_type = 'TokenIssued'`)).rows[0].n as number;
}

/** Produces tokens for users spread over every partition, and returns when all are projected, in ms from `since`. */
async function projectNew(l: TestLedger, act: string, tag: string, since: number): Promise<number> {
  const before = await projectedCount(l);
  await l.rt.publisher.publishMany('TokenIssued', Array.from({ length: 30 }, (_, i) => issued(act, `u-rec-${i}`, `${tag}-${i}`, 1)));
  await l.waitFor(`the ${tag} tokens projected`, async () => (await projectedCount(l)) === before + 30, 60_000);
  return Date.now() - since;
}

t.test('a projector killed and restarted resumes within 10 s of its restart', async (t) => {
  const l = await startTestLedger(t, { projector: false });
  const act = await l.activity({ budget: 1_000_000 });
  const env = { LEDGER_NAMESPACE: l.ns };
  let child = spawnBin('projector', env);
  t.teardown(() => { child.kill('SIGKILL'); });
  await projectNew(l, act, 'warm', Date.now());

  for (const signal of ['SIGKILL', 'SIGTERM'] as const) {
    child.kill(signal);
    await child.exited;
    const restarted = Date.now();
    child = spawnBin('projector', env);
    const ms = await projectNew(l, act, `after-${signal}`, restarted);
    t.ok(ms < TARGET_MS, `after ${signal}, the restarted projector projected new events ${(ms / 1000).toFixed(1)} s after its restart`);
  }
  child.kill('SIGTERM');
  await child.exited;
});

t.test('two projectors: when one is killed, the other takes over its partitions within seconds', async (t) => {
  const l = await startTestLedger(t, { projector: false });
  const act = await l.activity({ budget: 1_000_000 });
  const env = { LEDGER_NAMESPACE: l.ns };
  const a = spawnBin('projector', env);
  const b = spawnBin('projector', env);
  t.teardown(() => { a.kill('SIGKILL'); b.kill('SIGKILL'); });
  await projectNew(l, act, 'both', Date.now());

  a.kill('SIGKILL');
  await a.exited;
  const killed = Date.now();
  const ms = await projectNew(l, act, 'survivor', killed);
  t.ok(ms < TARGET_MS, `the survivor projected every partition's new events ${(ms / 1000).toFixed(1)} s after the other was killed`);
  b.kill('SIGTERM');
  await b.exited;
});

t.test('a consumer that crashes on an error kafkajs will not retry is restarted, not left idle', async (t) => {
  const l = await startTestLedger(t, { projector: false });
  const act = await l.activity({ budget: 1_000_000 });
  let calls = 0;
  const seen = new Set<number>();
  const consumer = await runBatchConsumer(l.rt, {
    groupId: `${l.ns}.crashy`, topics: [l.rt.topics.wallet], chunkSize: 100, partitionsConsumedConcurrently: 1, maxBytesPerPartition: 1 << 20,
    handle: async (items) => {
      // kafkajs gives up on a TypeError at once (no retry, no restart): before, the process lived on consuming nothing.
      if (calls++ === 0) throw new TypeError('a bug met once');
      for (const it of items) seen.add(it.offset);
      return { done: items[items.length - 1]!.offset + 1 };
    },
  });
  t.teardown(() => consumer.stop());
  const started = Date.now();
  await l.rt.publisher.publishMany('TokenIssued', [issued(act, 'u-crashy', 'crashy-1', 1)]);
  await l.waitFor('the token handled after the crash', async () => seen.size === 1, 30_000);
  t.ok(calls >= 2, `handled on attempt ${calls}, ${((Date.now() - started) / 1000).toFixed(1)} s after it was produced`);
});
