import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startTestLedger } from './helpers/ledger.ts';
import { issued, creditFor } from './helpers/events.ts';
import type { TokenIssued } from '../domain/events.ts';

const root = fileURLToPath(new URL('..', import.meta.url));

function startProjector(ns: string): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', 'bin/projector.ts'], {
    cwd: root, env: { ...process.env, LEDGER_NAMESPACE: ns, LOG_LEVEL: 'warn' }, stdio: ['ignore', 'ignore', 'inherit'],
  });
}

t.test('projector killed with SIGKILL mid-stream and restarted: balances equal a clean fold', async (t) => {
  const l = await startTestLedger(t, { projector: false });
  const act = await l.activity({ budget: 100_000_000 });
  const tokens: TokenIssued[] = [];
  const N = 12_000;
  for (let i = 0; i < N; i++) tokens.push(issued(act, `u-${i % 300}`, `o-${i}`, 1 + (i % 50)));
  const publishWave = async (from: number, to: number) => {
    await l.rt.publisher.publishMany('TokenIssued', tokens.slice(from, to));
    await l.rt.publisher.publishMany('TokenCredited', tokens.slice(from, to).filter((_, i) => i % 2 === 0).map((x) => creditFor(x, Date.now())));
  };
  await publishWave(0, N / 2);

  const count = async () => (await l.rt.pool.query('select count(*)::int as n from ledger_events')).rows[0].n as number;
  let child = startProjector(l.ns);
  t.teardown(() => { child.kill('SIGKILL'); });
  // Keep producing (including duplicates of what was already sent) while the projector runs.
  const more = publishWave(N / 2, N).then(() => l.rt.publisher.publishMany('TokenIssued', tokens.slice(0, N / 4)));
  // Kill once at least one chunk of wallet events is committed (beyond the single funding event).
  const atKill = await l.waitFor('projection under way', async () => {
    const n = await count();
    return n > 1 ? n : undefined;
  }, 60_000);
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  await more;
  const afterKill = await count();
  const distinct = N + 1 + N / 2; // grants, the funding, credits of every other grant
  t.ok(afterKill > 1 && afterKill < distinct, `killed mid-stream (${atKill} events projected when the kill was sent, ${afterKill} of ${distinct} after)`);

  child = startProjector(l.ns);
  const admin = l.rt.kafka.admin();
  await admin.connect();
  t.teardown(() => admin.disconnect());
  const ends = new Map<string, number>();
  for (const topic of [l.rt.topics.wallet, l.rt.topics.budget]) {
    for (const p of await admin.fetchTopicOffsets(topic)) ends.set(`${topic}/${p.partition}`, Number(p.high));
  }
  await l.waitFor('projector caught up with every partition', async () => {
    const { rows } = await l.rt.pool.query('select topic, partition, next_offset from consumer_offsets');
    const at = new Map(rows.map((r) => [`${r.topic}/${r.partition}`, Number(r.next_offset)]));
    return [...ends].every(([k, end]) => end === 0 || at.get(k) === end);
  }, 90_000);

  const fold = await l.cleanFold();
  const { rows } = await l.rt.pool.query<{ account: string; balance: number }>('select account, balance from account_balances');
  const projected = new Map(rows.map((r) => [r.account, r.balance]));
  const expected = new Map([...fold.balances].map(([a, b]) => [a, b.balance]));
  t.same(Object.fromEntries([...projected].sort()), Object.fromEntries([...expected].sort()), 'every balance equals the clean fold');
  t.equal(await count(), distinct, 'each distinct event applied exactly once (grants, the funding, credits)');
  const twice = await l.rt.pool.query('select event_id from postings group by event_id having count(*) <> 2');
  t.equal(twice.rowCount, 0, 'every event has exactly its two postings: nothing credited twice');
  const credited = await l.rt.pool.query(`select count(*)::int as n from tokens where status = 'credited'`);
  t.equal(credited.rows[0].n, N / 2);
  const income = await l.rt.pool.query('select coalesce(sum(amount),0)::bigint as s from tokens');
  t.equal(income.rows[0].s, tokens.reduce((s, x) => s + x.amount, 0), 'cumulative income counts each grant once');
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
});
