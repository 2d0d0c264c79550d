// An API process started while Kafka (or the schema registry) is unreachable serves what does
// not need Kafka: commands are journaled and answered, reads come from Postgres, and what
// needs Kafka answers 503 with a code. Its Kafka side (topics, schemas, producer, relay)
// connects in the background, and the journal drains once it can: nothing lost, each key in
// order, the money once in the projection.
//
// The outage is the test's own: the API's KAFKA_BROKERS (and SCHEMA_REGISTRY_URL) point at a
// TCP proxy whose port is closed, then opened. The shared broker is never touched. After the
// bootstrap through the proxy, clients talk to the address the broker advertises directly.
import t from 'tap';
import { randomBytes, randomUUID, type KeyObject } from 'node:crypto';
import { startTestLedger, testNamespace, wallet, type TestLedger } from './helpers/ledger.ts';
import { freePort, spawnBin, tcpProxy, type TcpProxy } from './helpers/outages.ts';
import { campaign, draw, putConfig, scene } from './helpers/campaigns.ts';
import { signRequest } from '../api/auth/upstream-signature.ts';
import { signUserToken } from '../api/auth/user-jwt.ts';
import { generateSigningKeyPem, publicKeyOf } from '../domain/tokens.ts';
import { loadConfig } from '../infra/config.ts';
import { kafkaClient } from '../infra/kafka.ts';
import { openRuntime, removeNamespace } from '../infra/runtime.ts';
import { replayTopics } from '../reconcile/replay.ts';
import type { LedgerEvent } from '../domain/events.ts';
import { account } from '../domain/accounts.ts';

interface Answer { status: number; json: any; headers: Headers }

interface ApiKeys { upstream: { id: string; secret: string }; adminToken: string; tokenSigningKeyPem: string; userKeyId: string; userKeyPem?: string; userPublicKey: KeyObject }

/** bin/api.ts as its own process, on a spare port, with the test's keys. */
async function spawnApi(env: Record<string, string>, keys: ApiKeys) {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const started = Date.now();
  const child = spawnBin('api', {
    API_PORT: String(port), WALLET_CACHE_MS: '0', CAMPAIGN_POLL_MS: '200', DRAW_RESTORE_GRACE_MS: '0',
    UPSTREAM_KEYS: `${keys.upstream.id}=${keys.upstream.secret}`, ADMIN_TOKEN: keys.adminToken, TOKEN_SIGNING_KEY: keys.tokenSigningKeyPem,
    USER_TOKEN_PUBLIC_KEYS: JSON.stringify({ [keys.userKeyId]: keys.userPublicKey.export({ type: 'spki', format: 'pem' }) }),
    ...env,
  });
  const call = async (method: string, path: string, body: unknown, headers: Record<string, string>): Promise<Answer> => {
    const payload = body === undefined ? '' : JSON.stringify(body);
    const res = await fetch(`${base}${path}`, {
      method, body: payload || undefined, headers: { ...(payload ? { 'content-type': 'application/json' } : {}), ...headers },
      signal: AbortSignal.timeout(20_000),
    });
    const text = await res.text();
    return { status: res.status, json: text ? JSON.parse(text) : null, headers: res.headers };
  };
  const api = {
    child, base,
    signed: (method: string, path: string, body?: unknown) => {
      const payload = body === undefined ? '' : JSON.stringify(body);
      return call(method, path, body, signRequest(keys.upstream, method, path, payload));
    },
    admin: (method: string, path: string, body?: unknown) => call(method, path, body, { authorization: `Bearer ${keys.adminToken}` }),
    asUser: (userId: string, token: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}) =>
      call(method, path, body, { authorization: `Bearer ${token}`, ...headers }),
    health: () => call('GET', '/health', undefined, {}),
    /** Resolves once it answers /health; how long that took from the spawn. */
    async serving(timeoutMs = 30_000): Promise<number> {
      for (;;) {
        if (child.exitCode !== null) throw new Error(`the API exited (${child.exitCode})`);
        if (await fetch(`${base}/health`, { signal: AbortSignal.timeout(1_000) }).then((r) => r.ok, () => false)) return Date.now() - started;
        if (Date.now() - started > timeoutMs) throw new Error('the API did not start serving');
        await sleep(50);
      }
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await child.exited;
      clearTimeout(timer);
    },
  };
  return api;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined && v !== false) return v as T;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

function address(url: string): { host: string; port: number } {
  const u = new URL(url.includes('://') ? url : `tcp://${url}`);
  return { host: u.hostname, port: Number(u.port) };
}

/** The wallet topic's events (from the beginning), and how often each event id is in it. */
async function walletLog(ns: string): Promise<{ events: LedgerEvent[]; copies: Map<string, number> }> {
  const rt = await openRuntime('outage-check', { namespace: ns });
  try {
    const events: LedgerEvent[] = [];
    await replayTopics(kafkaClient(rt.cfg, `${ns}-outage-check`), rt.codec, [rt.topics.wallet], (e) => events.push(e));
    const copies = new Map<string, number>();
    for (const e of events) copies.set(e.data.eventId, (copies.get(e.data.eventId) ?? 0) + 1);
    return { events, copies };
  } finally {
    await rt.close();
  }
}

const grantBody = (activityId: string, orderNo: string, userId: string, amount: number) => ({ activityId, sceneId: 's', orderNo, userId, amount, currency: 'CNY' });

t.test('an API started while Kafka and the registry are unreachable serves; its journal drains once both are back, each event once and in order', async (t) => {
  const l: TestLedger = await startTestLedger(t, { crediting: true });
  // Before the outage (through the in-process API, which reaches Kafka): a funded activity, a
  // user with an available balance, and a lottery campaign whose prize counters are loaded.
  const act = await l.activity({ budget: 100_000 });
  const rich = await l.signed('POST', '/v1/grants', grantBody(act, 'rich-0', 'u-rich', 1_000));
  t.equal(rich.statusCode, 201);
  await l.waitFor('u-rich credited', async () => (await wallet(l, 'u-rich')).available === 1_000);
  const A = `shake-${randomUUID().slice(0, 8)}`;
  await putConfig(l, campaign(A, [scene({ awardType: 'cash', noWinWeight: 1, prizes: [{ prizeId: 'cash', name: 'cash', weight: 1, quota: 100, amount: 50 }] })]));
  t.equal((await l.admin('POST', `/v1/admin/activities/${A}:formal/fundings`, { fundingId: 'f', amount: 10_000, currency: 'CNY' })).statusCode, 201);
  t.equal((await draw(l, A, 'u-d0', 'd-before')).statusCode, 201, 'a draw before the outage loads the counters');
  await l.waitFor('the setup produced', async () => (await l.admin('GET', '/v1/admin/journal')).json.unproduced === 0);
  // The in-process API's relay would produce the outage's commands (it reaches Kafka): only the
  // API under test may. Its projector and crediting processor go on.
  await l.app.close();

  const broker = address(l.cfg.kafkaBrokers[0]!);
  const registryUrl = new URL(l.cfg.schemaRegistryUrl);
  const kafkaProxy: TcpProxy = await tcpProxy(broker);
  const registryProxy: TcpProxy = await tcpProxy({ host: registryUrl.hostname, port: Number(registryUrl.port) });
  t.teardown(async () => { await kafkaProxy.close(); await registryProxy.close(); });
  await kafkaProxy.cut();
  await registryProxy.cut();
  const viaProxy = new URL(registryUrl);
  viaProxy.port = String(registryProxy.port);

  const keys: ApiKeys = {
    upstream: l.upstreamKey, adminToken: l.secrets.adminToken, tokenSigningKeyPem: l.secrets.tokenSigningKeyPem,
    userKeyId: 'test-login', userPublicKey: l.secrets.userTokenKeys.get('test-login')!,
  };
  const api = await spawnApi({ LEDGER_NAMESPACE: l.ns, KAFKA_BROKERS: `127.0.0.1:${kafkaProxy.port}`, SCHEMA_REGISTRY_URL: viaProxy.toString() }, keys);
  t.teardown(() => api.stop());
  const startedInMs = await api.serving();
  t.comment(`the API served ${startedInMs} ms after its spawn, Kafka and the registry unreachable`);
  t.ok(startedInMs < 15_000, 'it serves without waiting for Kafka');

  const health = await api.health();
  t.equal(health.status, 200, '/health answers (liveness)');
  t.match(health.json, { status: 'ok', postgres: true, redis: true, kafka: { connected: false, relay: { state: 'waiting' } } }, '/health says Kafka is not connected and the relay waits');

  const answers: Answer[] = [];
  const keep = (a: Answer) => { answers.push(a); return a; };
  // Commands: a funding, grants (per user, one after another), draws, a withdrawal the
  // projected balance covers, a red packet and its grabs.
  const act2 = `act-${randomUUID().slice(0, 8)}`;
  t.equal(keep(await api.admin('PUT', `/v1/admin/activities/${act2}`, { name: 'During the outage', currency: 'CNY', maxSingleGrant: 20_000 })).status, 200, 'an activity is created');
  t.equal(keep(await api.admin('POST', `/v1/admin/activities/${act2}/fundings`, { fundingId: 'initial', amount: 50_000, currency: 'CNY' })).status, 201, 'a funding is journaled');
  const users = ['u-a', 'u-b', 'u-c'];
  const sent = new Map<string, string[]>();
  await Promise.all(users.map(async (u) => {
    for (let i = 0; i < 5; i++) {
      const orderNo = `${u}-o-${i}`;
      const r = keep(await api.signed('POST', '/v1/grants', grantBody(i % 2 ? act : act2, orderNo, u, 100 + i)));
      t.equal(r.status, 201, `grant ${orderNo} accepted`);
      sent.set(u, [...(sent.get(u) ?? []), orderNo]);
    }
  }));
  const retried = keep(await api.signed('POST', '/v1/grants', grantBody(act2, 'u-a-o-0', 'u-a', 100)));
  t.same([retried.status, retried.headers.get('idempotent-replayed')], [201, 'true'], 'a retried order number gets its first answer');
  const draws: Answer[] = [];
  for (let i = 0; i < 6; i++) draws.push(keep(await api.signed('POST', '/v1/draws', { activityId: A, sceneId: 'shake', userId: `u-d${i}`, drawId: `d-out-${i}` })));
  t.ok(draws.every((d) => d.status === 201), 'draws are answered');
  const withdrawal = keep(await api.asUser('u-rich', l.userToken('u-rich'), 'POST', '/v1/wallets/u-rich/withdrawals', { amount: 300, currency: 'CNY' }, { 'idempotency-key': 'outage-withdrawal-1' }));
  t.equal(withdrawal.status, 201, 'a withdrawal the projected balance covers is accepted');
  const packet = keep(await api.asUser('u-rich', l.userToken('u-rich'), 'POST', '/v1/packets', { amount: 200, currency: 'CNY', count: 2 }, { 'idempotency-key': 'outage-packet-1' }));
  t.equal(packet.status, 201, 'a red packet is created');
  const grabs = [keep(await api.asUser('u-g1', l.userToken('u-g1'), 'POST', `/v1/packets/${packet.json.packetId}/grab`)), keep(await api.asUser('u-g2', l.userToken('u-g2'), 'POST', `/v1/packets/${packet.json.packetId}/grab`))];
  t.ok(grabs.every((g) => g.status === 201), 'its shares are grabbed');

  // Reads from Postgres.
  const read = keep(await api.asUser('u-rich', l.userToken('u-rich'), 'GET', '/v1/wallets/u-rich'));
  t.same([read.status, read.json.available], [200, 1_000], 'a wallet read answers from the projection (the withdrawal and the packet are not in it yet)');
  const journal = keep(await api.admin('GET', '/v1/admin/journal'));
  t.equal(journal.status, 200);
  const commands = 1 + 15 + 6 + 1 + 1 + 2;
  t.ok(journal.json.unproduced >= commands, `the journal holds what was accepted (${journal.json.unproduced} unproduced)`);

  // What needs Kafka: a 503 with a code and retry-after, fast.
  const poor = keep(await api.asUser('u-a', l.userToken('u-a'), 'POST', '/v1/wallets/u-a/withdrawals', { amount: 100, currency: 'CNY' }, { 'idempotency-key': 'outage-withdrawal-2' }));
  t.same([poor.status, poor.json.code], [503, 'WALLET_BUSY'], 'a withdrawal of rewards not projected yet cannot be decided: 503, not a refusal');
  t.ok(poor.headers.get('retry-after'), 'with retry-after');
  const B = `shake-${randomUUID().slice(0, 8)}`;
  keep(await api.admin('PUT', `/v1/admin/campaigns/${B}/config`, campaign(B, [scene({ awardType: 'goods', noWinWeight: 1, prizes: [{ prizeId: 'frame', name: 'frame', weight: 1, quota: 10, itemId: 'frame', quantity: 1 }] })])));
  const unloaded = await until('the new campaign polled', async () => {
    const r = await api.signed('POST', '/v1/draws', { activityId: B, sceneId: 'shake', userId: 'u-x', drawId: `d-new-${randomUUID()}` });
    return r.json?.code === 'UNKNOWN_ACTIVITY' ? undefined : r;
  }, 10_000);
  keep(unloaded);
  t.same([unloaded.status, unloaded.json.code], [503, 'DRAWS_RESTORING'], 'a new campaign\'s counters need the log: 503 DRAWS_RESTORING');
  t.ok(unloaded.headers.get('retry-after'), 'with retry-after');
  t.notOk(answers.some((a) => a.status >= 500 && a.status !== 503), 'no 500 at all');

  // Nothing of it reached the log yet.
  const { rows: early } = await l.rt.pool.query(`select count(*)::int as n from tokens where activity_id = $1`, [act2]);
  t.equal(early[0].n, 0, 'nothing is projected while the API cannot reach Kafka');

  // Kafka is back, the registry is not: the schemas cannot be registered, the journal keeps its commands.
  await kafkaProxy.restore();
  await sleep(3_000);
  const halfway = await api.health();
  t.match(halfway.json, { kafka: { connected: false } }, 'still not connected without the registry');
  t.ok(halfway.json.kafka.lastError, `and it says why: ${halfway.json.kafka.lastError}`);
  t.ok((await api.admin('GET', '/v1/admin/journal')).json.unproduced >= commands, 'the journal still holds the commands');

  const back = Date.now();
  await registryProxy.restore();
  await until('the API connected', async () => (await api.health()).json.kafka.connected === true);
  const connectedMs = Date.now() - back;
  await until('the journal drained', async () => (await api.admin('GET', '/v1/admin/journal')).json.unproduced === 0);
  t.comment(`connected ${connectedMs} ms and drained ${Date.now() - back} ms after the registry came back`);
  t.match((await api.health()).json, { status: 'ok', kafka: { connected: true, relay: { state: 'running' } } }, '/health: connected, relay running');

  // The projection (read through the API under test): the money once.
  const walletOf = async (u: string) => {
    const r = await api.asUser(u, l.userToken(u), 'GET', `/v1/wallets/${u}`);
    if (r.status !== 200) throw new Error(`wallet read failed: ${JSON.stringify(r.json)}`);
    return r.json;
  };
  for (const u of users) {
    await l.waitFor(`${u} credited`, async () => (await walletOf(u)).available === 100 + 101 + 102 + 103 + 104, 60_000);
  }
  const { rows: tokens } = await l.rt.pool.query(`select count(*)::int as n from tokens where user_id = any($1)`, [users]);
  t.equal(tokens[0].n, 15, 'fifteen tokens: every grant once');
  await l.waitFor('the withdrawal and the packet projected', async () => {
    const w = await walletOf('u-rich');
    return w.available === 500 && w.withdrawing === 300;
  });
  const shares = grabs.map((g) => g.json.amount as number);
  await l.waitFor('the shares credited', async () => (await walletOf('u-g1')).available === shares[0] && (await walletOf('u-g2')).available === shares[1]);
  const wins = draws.filter((d) => d.json.outcome === 'won').length;
  const { rows: drawTokens } = await l.rt.pool.query(`select count(*)::int as n from tokens where activity_id = $1 and order_no like 'draw.d-out-%'`, [`${A}:formal`]);
  t.equal(drawTokens[0].n, wins, `each cash win paid once (${wins} of ${draws.length})`);
  await l.waitFor('the funding and the grants of the new activity projected', async () => {
    const { rows } = await l.rt.pool.query('select balance from account_balances where account = $1', [account.activityBudget(act2)]);
    return Number(rows[0]?.balance) === 50_000 - 3 * (100 + 102 + 104);
  });

  // The log: each journaled event once, each user's grants in the order they were accepted.
  const log = await walletLog(l.ns);
  const journaled = log.events.filter((e) => ['TokenIssued', 'WithdrawalRequested', 'PacketCreated', 'PacketClaimed', 'LotteryDrawn'].includes(e.type));
  t.same(journaled.filter((e) => (log.copies.get(e.data.eventId) ?? 0) !== 1).map((e) => e.data.eventId), [], 'no journaled event is in the log twice');
  for (const u of users) {
    const order = log.events.filter((e) => e.type === 'TokenIssued' && e.data.userId === u).map((e) => (e.data as { orderNo: string }).orderNo);
    t.same(order, sent.get(u), `${u}'s grants are in the log in the order they were accepted`);
  }
  const created = log.events.findIndex((e) => e.type === 'PacketCreated');
  const claims = log.events.map((e, i) => (e.type === 'PacketClaimed' ? i : -1)).filter((i) => i >= 0);
  t.ok(created >= 0 && claims.length === 2 && claims.every((i) => i > created), 'the packet\'s claims come after its creation');
  t.same((await api.admin('GET', '/v1/admin/invariants')).json.violations, [], 'the invariants hold');
  t.same((await l.cleanFold()).anomalies, [], 'a clean fold of the log agrees');
  await api.stop();
});

t.test('an API started while only the schema registry is unreachable, on a namespace with no topics yet, creates them and drains its journal once the registry is back', async (t) => {
  const ns = testNamespace();
  const cfg = loadConfig({ namespace: ns });
  const registryUrl = new URL(cfg.schemaRegistryUrl);
  const registryProxy = await tcpProxy({ host: registryUrl.hostname, port: Number(registryUrl.port) });
  await registryProxy.cut();
  const viaProxy = new URL(registryUrl);
  viaProxy.port = String(registryProxy.port);
  const userKeyPem = generateSigningKeyPem();
  const keys: ApiKeys = {
    upstream: { id: 'outage-upstream', secret: randomBytes(16).toString('hex') }, adminToken: randomBytes(16).toString('hex'),
    tokenSigningKeyPem: generateSigningKeyPem(), userKeyId: 'outage-login', userKeyPem, userPublicKey: publicKeyOf(userKeyPem),
  };
  const api = await spawnApi({ LEDGER_NAMESPACE: ns, KAFKA_PARTITIONS: '3', SCHEMA_REGISTRY_URL: viaProxy.toString() }, keys);
  t.teardown(async () => {
    await api.stop();
    await registryProxy.close();
    const rt = await openRuntime('outage-cleanup', { namespace: ns });
    await removeNamespace(rt).finally(() => rt.close());
  });
  const startedInMs = await api.serving();
  t.comment(`the API served ${startedInMs} ms after its spawn, the registry unreachable`);

  const act = `act-${randomUUID().slice(0, 8)}`;
  t.equal((await api.admin('PUT', `/v1/admin/activities/${act}`, { name: 'Registry outage', currency: 'CNY', maxSingleGrant: 20_000 })).status, 200);
  t.equal((await api.admin('POST', `/v1/admin/activities/${act}/fundings`, { fundingId: 'initial', amount: 10_000, currency: 'CNY' })).status, 201);
  const orders = Array.from({ length: 8 }, (_, i) => `r-o-${i}`);
  for (const o of orders) t.equal((await api.signed('POST', '/v1/grants', grantBody(act, o, 'u-r', 10))).status, 201, `grant ${o} accepted`);
  const health = await until('a first attempt failed', async () => { const h = await api.health(); return h.json.kafka.lastError ? h : undefined; }, 20_000);
  t.match(health.json, { status: 'ok', kafka: { connected: false, relay: { state: 'waiting' } } }, '/health: not connected');
  t.match(health.json.kafka.lastError, /ECONNREFUSED|connect|registry|socket/i, `the reason: ${health.json.kafka.lastError}`);
  t.equal((await api.admin('GET', '/v1/admin/journal')).json.unproduced, 9, 'the journal holds the funding and the grants');
  const walletWhileDown = await api.asUser('u-r', signUserToken(userKeyPem, keys.userKeyId, 'u-r'), 'GET', '/v1/wallets/u-r');
  t.same([walletWhileDown.status, walletWhileDown.json.available], [200, 0], 'a wallet read answers from Postgres');

  await registryProxy.restore();
  await until('the journal drained', async () => (await api.admin('GET', '/v1/admin/journal')).json.unproduced === 0);
  t.match((await api.health()).json, { kafka: { connected: true, relay: { state: 'running' } } });
  const log = await walletLog(ns);
  t.same(log.events.filter((e) => e.type === 'TokenIssued').map((e) => (e.data as { orderNo: string }).orderNo), orders, 'every grant once, in order, in the topic the API created');
  await api.stop();
});
