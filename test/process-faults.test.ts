// Processes outlive their dependencies' restarts (issue 17): a Postgres stop mid-transaction
// and a Redis restart are survived, and the work carries on once the service is back. The
// outages are the test's own (a proxy in front of the shared Postgres, a private Redis), so
// nobody else's tests see them.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { startTestLedger } from './helpers/ledger.ts';
import { issued } from './helpers/events.ts';
import { childrenOf, databaseUrlVia, freePort, npmStart, ownRedis, spawnBin, tcpProxy } from './helpers/outages.ts';
import { signRequest } from '../api/auth/upstream-signature.ts';
import { signUserToken } from '../api/auth/user-jwt.ts';
import { devUpstreamKey } from '../bin/secrets.ts';
import { devUserTokenKey, DEV_USER_KEY_ID } from '../infra/keys.ts';
import { pgPool } from '../infra/db.ts';
import { projectorName } from '../projections/ledger-projector.ts';
import { ContinuousReconciler } from '../reconcile/continuous.ts';
import { ProviderStatement } from '../reconcile/provider-statement.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('projector: Postgres stops mid-transaction and comes back; the process lives and projects everything', async (t) => {
  const l = await startTestLedger(t, { projector: false });
  const act = await l.activity({ budget: 10_000_000 });
  const pgUrl = new URL(l.cfg.databaseUrl);
  const proxy = await tcpProxy({ host: pgUrl.hostname, port: Number(pgUrl.port || 5432) });
  t.teardown(() => proxy.close());
  const child = spawnBin('projector', { LEDGER_NAMESPACE: l.ns, DATABASE_URL: databaseUrlVia(l.cfg.databaseUrl, proxy.port) });
  t.teardown(() => { child.kill('SIGKILL'); });
  const count = async () => (await l.rt.pool.query('select count(*)::int as n from ledger_events')).rows[0].n as number;
  await l.waitFor('the funding projected', async () => (await count()) >= 1, 60_000);

  // The next thing the projector sends Postgres is a projection transaction: the stop hits it there.
  const stopped = proxy.cutOnNextRequest();
  const first = Array.from({ length: 200 }, (_, i) => issued(act, `u-pg-${i % 20}`, `pg-a-${i}`, 10));
  await l.rt.publisher.publishMany('TokenIssued', first);
  await stopped;
  const second = Array.from({ length: 200 }, (_, i) => issued(act, `u-pg-${i % 20}`, `pg-b-${i}`, 10));
  await l.rt.publisher.publishMany('TokenIssued', second);
  await sleep(4_000);
  t.equal(child.exitCode, null, 'the projector is still running while Postgres is down');

  await proxy.restore();
  const back = Date.now();
  await l.waitFor('every token projected', async () => (await count()) === 1 + first.length + second.length, 60_000);
  t.pass(`projection resumed ${((Date.now() - back) / 1000).toFixed(1)} s after Postgres came back`);
  t.equal(child.exitCode, null, 'and it is still running');
  child.kill('SIGTERM');
  t.same(await child.exited, { code: 0, signal: null }, 'it stops cleanly on SIGTERM');
});

t.test('payment provider: Postgres restarts under its idle connections; it lives and pays again', async (t) => {
  const l = await startTestLedger(t, { projector: false });
  const pgUrl = new URL(l.cfg.databaseUrl);
  const proxy = await tcpProxy({ host: pgUrl.hostname, port: Number(pgUrl.port || 5432) });
  t.teardown(() => proxy.close());
  const port = await freePort();
  const apiKey = randomBytes(16).toString('hex');
  const child = spawnBin('payment-provider', {
    LEDGER_NAMESPACE: l.ns, DATABASE_URL: databaseUrlVia(l.cfg.databaseUrl, proxy.port), PROVIDER_PORT: String(port), PROVIDER_API_KEY: apiKey,
  });
  t.teardown(() => { child.kill('SIGKILL'); });
  const pay = (payoutId: string) => fetch(`http://127.0.0.1:${port}/v1/payouts`, {
    method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${apiKey}` },
    body: JSON.stringify({ payoutId, userId: 'u-psp', amount: 100, currency: 'CNY' }),
  }).then((r) => r.status, () => 0);
  await l.waitFor('the provider listening', async () => (await pay('p-1')) === 201, 60_000);

  await proxy.cut(); // its pool's connections are idle now
  await sleep(1_000);
  t.equal(child.exitCode, null, 'the provider is still running after its idle connections died');
  t.equal(await pay('p-2'), 500, 'a payout it cannot record fails (the caller retries)');
  await proxy.restore();
  await l.waitFor('the provider paying again', async () => (await pay('p-2')) === 201, 30_000);
  t.equal(child.exitCode, null, 'and it is still running');
});

t.test('crediting: Redis restarts (its data gone); the process lives and credits again', async (t) => {
  const l = await startTestLedger(t);
  const act = await l.activity({ budget: 10_000_000 });
  const redis = await ownRedis();
  t.teardown(() => redis.kill());
  const child = spawnBin('crediting', { LEDGER_NAMESPACE: l.ns, REDIS_URL: redis.url });
  t.teardown(() => { child.kill('SIGKILL'); });
  const credited = async () => (await l.rt.pool.query(`select count(*)::int as n from tokens where status = 'credited'`)).rows[0].n as number;

  await l.rt.publisher.publishMany('TokenIssued', Array.from({ length: 20 }, (_, i) => issued(act, `u-rd-${i}`, `rd-a-${i}`, 10)));
  await l.waitFor('the first tokens credited', async () => (await credited()) === 20, 60_000);

  await redis.kill();
  await l.rt.publisher.publishMany('TokenIssued', Array.from({ length: 20 }, (_, i) => issued(act, `u-rd-${i}`, `rd-b-${i}`, 10)));
  await sleep(3_000);
  t.equal(child.exitCode, null, 'crediting is still running while Redis is down');
  t.equal(await credited(), 20, 'and credits nothing without its rate limit');

  await redis.start();
  const back = Date.now();
  await l.waitFor('the rest credited', async () => (await credited()) === 40, 60_000);
  t.pass(`crediting resumed ${((Date.now() - back) / 1000).toFixed(1)} s after Redis came back`);
  t.equal(child.exitCode, null, 'and it is still running');
});

t.test('reconciler: a connection lost under its lock query goes back to the pool broken, not kept for ever', async (t) => {
  const l = await startTestLedger(t, { projector: false });
  const pgUrl = new URL(l.cfg.databaseUrl);
  const proxy = await tcpProxy({ host: pgUrl.hostname, port: Number(pgUrl.port || 5432) });
  t.teardown(() => proxy.close());
  // One connection, as a small pool has after a few such losses.
  const pool = pgPool(databaseUrlVia(l.cfg.databaseUrl, proxy.port), l.ns, 1, l.rt.log);
  t.teardown(() => pool.end());
  const reconciler = new ContinuousReconciler({
    kafka: l.rt.kafka, registryUrl: l.cfg.schemaRegistryUrl, pool, topics: l.rt.topics, projector: projectorName(l.ns),
    provider: new ProviderStatement('http://127.0.0.1:1', 'unused'),
  }, l.rt.log, l.ns, { intervalMs: 60_000, behindMs: 300_000, reportPeriodMs: 3_600_000, creditGraceMs: 300_000, payoutGraceMs: 300_000 });
  t.teardown(() => reconciler.stop());
  await pool.query('select 1'); // the connection is open and idle

  const lost = proxy.cutOnNextRequest();
  await t.rejects(reconciler.tick(), 'the tick fails: Postgres went away under its lock query');
  await lost;
  await proxy.restore();
  const answered = await Promise.race([pool.query('select 1').then(() => true), sleep(5_000).then(() => false)]);
  t.ok(answered, 'the pool serves again once Postgres is back (the lost connection was not kept checked out)');
});

t.test('npm start: every process outlives a Postgres restart and a Redis restart, and money flows again after', async (t) => {
  const l = await startTestLedger(t, { projector: false }); // the namespace, and its removal afterwards
  const pgUrl = new URL(l.cfg.databaseUrl);
  const pg = await tcpProxy({ host: pgUrl.hostname, port: Number(pgUrl.port || 5432) });
  t.teardown(() => pg.close());
  // Redis through a proxy too: its data survives, as it would a restart with persistence, so
  // what is tested is the processes, not how each copes with losing Redis's data.
  const redisUrl = new URL(l.cfg.redisUrl);
  const redis = await tcpProxy({ host: redisUrl.hostname, port: Number(redisUrl.port || 6379) });
  t.teardown(() => redis.close());
  const start = await npmStart({
    LEDGER_NAMESPACE: l.ns, LOG_LEVEL: 'error',
    DATABASE_URL: databaseUrlVia(l.cfg.databaseUrl, pg.port), REDIS_URL: `redis://127.0.0.1:${redis.port}`,
  });
  t.teardown(() => start.kill());
  await start.up();
  const processes = childrenOf(start.proc.pid!);
  t.equal(processes.length, 8, 'npm start runs its 8 processes');

  // A reward granted, credited, withdrawn and paid out: every process of the money path at work.
  const moneyFlows = async (userId: string) => {
    const body = JSON.stringify({ activityId: 'demo-rain', sceneId: 'chaos', orderNo: `chaos-${userId}`, userId, amount: 100, currency: 'CNY' });
    const grant = await fetch(`${start.api}/v1/grants`, { method: 'POST', headers: { 'content-type': 'application/json', ...signRequest(devUpstreamKey(), 'POST', '/v1/grants', body) }, body });
    if (grant.status !== 201) return `grant ${grant.status}`;
    await l.waitFor(`${userId}'s reward credited`, async () => (await l.rt.pool.query(`select 1 from tokens where user_id = $1 and status = 'credited'`, [userId])).rowCount === 1, 60_000);
    const w = await fetch(`${start.api}/v1/wallets/${userId}/withdrawals`, {
      method: 'POST', body: JSON.stringify({ amount: 60, currency: 'CNY' }),
      headers: { 'content-type': 'application/json', 'idempotency-key': `chaos-${userId}`, authorization: `Bearer ${signUserToken(devUserTokenKey(), DEV_USER_KEY_ID, userId)}` },
    });
    if (w.status !== 201) return `withdrawal ${w.status} ${await w.text()}`;
    await l.waitFor(`${userId}'s payout settled`, async () => (await l.rt.pool.query(`select 1 from withdrawals where user_id = $1 and status = 'settled'`, [userId])).rowCount === 1, 60_000);
    return 'paid';
  };
  t.equal(await moneyFlows('u-chaos-before'), 'paid', 'before the faults, a reward is granted, credited and paid out');

  await pg.cut();
  await sleep(4_000);
  await pg.restore();
  await redis.cut();
  await sleep(3_000);
  await redis.restore();
  const back = Date.now();
  // The API may answer 503 until its connections are back: the caller retries, as upstream does.
  let outcome = '';
  for (let i = 0; i < 20 && outcome !== 'paid'; i++) {
    outcome = await moneyFlows('u-chaos-after');
    if (outcome !== 'paid') await sleep(500);
  }
  t.equal(outcome, 'paid', `after the faults, money flows again (paid out ${((Date.now() - back) / 1000).toFixed(1)} s after Redis came back)`);
  const now = childrenOf(start.proc.pid!);
  t.same(now.map((c) => c.pid).sort(), processes.map((c) => c.pid).sort(), 'no process died: every one is the one that was started');
  start.proc.kill('SIGTERM');
  t.equal(await start.exited, 0, 'npm start stops cleanly');
});
