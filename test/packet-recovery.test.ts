import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { PacketGrabs } from '../infra/packet-grabs.ts';
import { openRuntime } from '../infra/runtime.ts';
import { buildApp } from '../api/app.ts';
import { packetIdFor } from '../domain/packets.ts';
import { PacketKeeper } from '../streams/packet-keeper.ts';
import { Journal } from '../infra/journal.ts';
import { PacketClaims } from '../infra/packet-claims.ts';
import { PacketReader, PacketRestorer } from '../projections/packet-reader.ts';
import { ProjectionFence } from '../infra/projection-fence.ts';
import { CreditingProcessor } from '../streams/crediting.ts';
import { fundedUser, startTestLedger, wallet, type TestLedger } from './helpers/ledger.ts';
import { audit, ofKind } from './helpers/audit.ts';

const root = fileURLToPath(new URL('..', import.meta.url));


const count = async (l: TestLedger, sql: string, args: unknown[] = []) => (await l.rt.pool.query(sql, args)).rows[0].n as number;

t.test('the crediting processor killed with SIGKILL between claim and credit: every grabber ends credited exactly once', async (t) => {
  const l = await startTestLedger(t, { crediting: false });
  await fundedUser(l, 'k-sender', 10_000);
  const created = await l.asUser('k-sender', 'POST', '/v1/packets', { amount: 5_000, currency: 'CNY', count: 40 }, { 'idempotency-key': 'kill-packet-1' });
  t.equal(created.statusCode, 201, JSON.stringify(created.json));
  const P = created.json.packetId;
  const shares = new Map<string, number>();
  for (let i = 0; i < 40; i++) {
    const r = await l.asUser(`k-${i}`, 'POST', `/v1/packets/${P}/grab`);
    shares.set(`k-${i}`, r.json.amount);
  }
  await l.waitFor('claims projected', async () => (await count(l, 'select count(*)::int as n from packet_claims where packet_id = $1', [P])) === 40);
  t.equal(await count(l, 'select count(*)::int as n from packet_credits'), 0, 'claimed, nothing credited yet');

  // A crediting process slowed to 2 credits/s (the account system's capacity), killed while
  // it holds the claims and waits for permits to credit them.
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', 'bin/crediting.ts'], {
    cwd: root, env: { ...process.env, LEDGER_NAMESPACE: l.ns, CREDIT_RATE_PER_SEC: '2', LOG_LEVEL: 'warn' }, stdio: ['ignore', 'ignore', 'inherit'],
  });
  t.teardown(() => { child.kill('SIGKILL'); });
  await l.waitFor('crediting under way', async () => (await l.rt.redis.keys(`${l.ns}:rate:crediting:*`)).length > 0, 60_000);
  await new Promise((r) => setTimeout(r, 1_500));
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  await new Promise((r) => setTimeout(r, 500));
  const atKill = await count(l, 'select count(*)::int as n from packet_credits');
  t.ok(atKill < 40, `killed between claims and credits (${atKill} of 40 credited)`);
  const found = ofKind(await audit(l), 'packet_share_never_credited');
  t.equal(found.length, 40 - atKill, 'the replay audit names every grabbed share not yet credited');
  t.match(found[0], { packetId: P, repair: 'credit_share', expected: 'credited', actual: 'pending' });
  t.equal(found[0]!.repairData!.amount, shares.get(found[0]!.userId!), 'with the grabber and the amount owed');

  const crediting = new CreditingProcessor(l.rt, { ratePerSec: 10_000 });
  await crediting.start();
  t.teardown(() => crediting.stop());
  await l.waitFor('all credited', async () => (await count(l, 'select count(*)::int as n from packet_credits')) === 40, 60_000);
  await new Promise((r) => setTimeout(r, 1_000)); // let redelivered copies drain before judging
  t.equal(await count(l, `select count(*)::int as n from ledger_events where event_type = 'PacketShareCredited'`), 40, 'one credit per grabber in the ledger');
  for (const [user, amount] of shares) {
    const w = await wallet(l, user);
    if (w.available !== amount || w.pending !== 0) t.fail(`${user}: ${JSON.stringify(w)}, expected ${amount} available`);
  }
  t.pass('every grabber holds exactly their share, available, nothing pending');
  const after = await audit(l);
  t.ok(after.clean, `clean once credited: ${JSON.stringify(after.byKind)}`);
});

t.test('an API that died between the Redis grab and the claim: the keeper writes the claim and the grabber is credited', async (t) => {
  const l = await startTestLedger(t, { crediting: true });
  await fundedUser(l, 'd-sender', 1_000);
  const created = await l.asUser('d-sender', 'POST', '/v1/packets', { amount: 600, currency: 'CNY', count: 3 }, { 'idempotency-key': 'died-packet-1' });
  const P = created.json.packetId;
  // The grab's first step only, as if the instance died before producing the claim.
  const grabs = new PacketGrabs(l.rt.redis, l.ns);
  const got = await grabs.grab(P, 'd-1', Date.now());
  t.equal(got.outcome, 'claimed');
  const share = got.outcome === 'claimed' ? got.share.amount : 0;
  t.same(await grabs.unsent(Date.now() + 1, 10), [{ packetId: P, userId: 'd-1' }], 'the grab is listed as unsent');

  const keeper = new PacketKeeper(l.rt);
  t.teardown(() => keeper.stop());
  t.equal((await keeper.runOnce(Date.now())).resent, 0, 'not before the sweep delay: the grab may still be producing');
  const round = await keeper.runOnce(Date.now() + l.rt.cfg.packetClaimSweepMs + 1);
  t.equal(round.resent, 1, 'the keeper wrote the claim');
  await l.waitFor('credited', async () => (await wallet(l, 'd-1')).available === share);
  t.same(await grabs.unsent(Date.now() + 60_000, 10), [], 'nothing left unsent');
  // The user retrying the grab gets the same share and writes nothing new.
  const retry = await l.asUser('d-1', 'POST', `/v1/packets/${P}/grab`);
  t.equal(retry.statusCode, 200);
  t.equal(retry.json.amount, share);
  await new Promise((r) => setTimeout(r, 500));
  t.equal(await count(l, `select count(*)::int as n from ledger_events where event_type = 'PacketClaimed'`), 1);
  t.match(await wallet(l, 'd-1'), { available: share, pending: 0 });
});

t.test('Redis loses the packet: it is restored from the ledger, and no share is handed out twice', async (t) => {
  const l = await startTestLedger(t, { crediting: true });
  await fundedUser(l, 'r-sender', 1_000);
  const created = await l.asUser('r-sender', 'POST', '/v1/packets', { amount: 500, currency: 'CNY', count: 4 }, { 'idempotency-key': 'lost-packet-1' });
  const P = created.json.packetId;
  const first = await l.asUser('r-1', 'POST', `/v1/packets/${P}/grab`);
  const second = await l.asUser('r-2', 'POST', `/v1/packets/${P}/grab`);
  t.equal(first.statusCode, 201);
  const keys = await l.rt.redis.keys(`${l.ns}:{pk:${P}}:*`);
  t.ok(keys.length >= 2);
  await l.rt.redis.del(...keys);
  const again = await l.asUser('r-1', 'POST', `/v1/packets/${P}/grab`);
  t.equal(again.statusCode, 200, 'restored: r-1 grabbed before');
  t.equal(again.json.amount, first.json.amount);
  const rest = await Promise.all(['r-3', 'r-4', 'r-5'].map((u) => l.asUser(u, 'POST', `/v1/packets/${P}/grab`)));
  t.same(rest.map((r) => r.statusCode).sort(), [201, 201, 409], 'only the two shares nobody took are handed out');
  t.same([first, second, ...rest].filter((r) => r.statusCode === 201).map((r) => r.json.seq).sort(), [0, 1, 2, 3]);
  await l.waitFor('finished', async () => (await l.rt.pool.query('select status from packets where packet_id = $1', [P])).rows[0]?.status === 'finished');
  t.equal(await count(l, 'select sum(amount)::int as n from packet_claims where packet_id = $1', [P]), 500);
});

t.test('a grabber withdrawing a share not yet credited: the withdrawal credits it first', async (t) => {
  const l = await startTestLedger(t, { crediting: false });
  await fundedUser(l, 'w-sender', 1_000);
  const created = await l.asUser('w-sender', 'POST', '/v1/packets', { amount: 300, currency: 'CNY', count: 1 }, { 'idempotency-key': 'withdraw-share-1' });
  const P = created.json.packetId;
  const got = await l.asUser('w-grabber', 'POST', `/v1/packets/${P}/grab`);
  t.equal(got.json.amount, 300, 'one share: the whole packet');
  await l.waitFor('claim projected', async () => (await wallet(l, 'w-grabber')).pending === 300);
  const res = await l.asUser('w-grabber', 'POST', '/v1/wallets/w-grabber/withdrawals', { amount: 300, currency: 'CNY' }, { 'idempotency-key': 'withdraw-share-key' });
  t.equal(res.statusCode, 201, JSON.stringify(res.json));
  await l.waitFor('withdrawal projected', async () => (await wallet(l, 'w-grabber')).withdrawing === 300);
  t.match(await wallet(l, 'w-grabber'), { available: 0, pending: 0, withdrawing: 300 });
  t.equal(await count(l, `select count(*)::int as n from ledger_events where event_type = 'PacketShareCredited'`), 1, 'credited once, by the withdrawal');
});

t.test('a packet accepted while its instance cannot write to Kafka: journaled, produced by another instance\'s relay, its hold never stranded', async (t) => {
  const l = await startTestLedger(t, { crediting: true });
  await fundedUser(l, 's-sender', 1_000);
  // An API instance that can no longer write to Kafka.
  const rt2 = await openRuntime('api-cut-off', { namespace: l.ns });
  const app2 = await buildApp(rt2, l.secrets);
  t.teardown(async () => { await app2.close(); await rt2.close(); });
  await rt2.producer.producer.disconnect();
  const res = await app2.inject({
    method: 'POST', url: '/v1/packets', payload: { amount: 600, currency: 'CNY', count: 3 },
    headers: { authorization: `Bearer ${l.userToken('s-sender')}`, 'idempotency-key': 'journaled-packet-1' },
  });
  t.equal(res.statusCode, 201, 'accepted: the journal, not Kafka, is what the answer waits for');
  const second = await l.asUser('s-sender', 'POST', '/v1/packets', { amount: 600, currency: 'CNY', count: 3 }, { 'idempotency-key': 'journaled-packet-2' });
  t.equal(second.statusCode, 409, 'the accepted request holds its total');
  const P = packetIdFor('s-sender', 'journaled-packet-1');
  await l.waitFor('packet projected', async () => (await l.rt.pool.query('select 1 from packets where packet_id = $1', [P])).rowCount === 1);
  t.match(await wallet(l, 's-sender'), { available: 400 }, 'the total moved to escrow once');
  // Grabbed on the cut-off instance too: the claim is journaled there and produced by the healthy relay, after the creation.
  const grabbed = await app2.inject({ method: 'POST', url: `/v1/packets/${P}/grab`, headers: { authorization: `Bearer ${l.userToken('s-grabber')}` } });
  t.equal(grabbed.statusCode, 201, grabbed.body);
  await l.waitFor('credited', async () => (await wallet(l, 's-grabber')).available === JSON.parse(grabbed.body).amount);
});

t.test('Redis loses a packet while a claim is still on its way to the ledger: no share goes to two users, and each user keeps one share', async (t) => {
  const l = await startTestLedger(t, { crediting: true });
  await fundedUser(l, 'f-sender', 1_000);
  const created = await l.asUser('f-sender', 'POST', '/v1/packets', { amount: 500, currency: 'CNY', count: 5 }, { 'idempotency-key': 'inflight-1' });
  const P = created.json.packetId;
  // f-1 grabs, and its claim reaches the journal only after Redis lost the packet and restored it.
  const grabs = new PacketGrabs(l.rt.redis, l.ns);
  const got = await grabs.grab(P, 'f-1', Date.now());
  if (got.outcome !== 'claimed') throw new Error(got.outcome);
  await l.rt.redis.del(...(await l.rt.redis.keys(`${l.ns}:{pk:${P}}:*`)));
  const other = await l.asUser('f-2', 'POST', `/v1/packets/${P}/grab`); // restores the packet: share 0 looks free
  t.equal(other.statusCode, 201);
  t.equal(other.json.seq, 0, 'the restored packet hands out the in-flight share again');
  // Now the in-flight claim lands: its share is taken, so f-1's grab must end with another share.
  const journal = new Journal({ pool: l.rt.pool, topics: l.rt.topics, shards: l.rt.cfg.journalShards, maxBatch: 10 });
  const late = await new PacketClaims(journal, grabs).record({ packetId: P, senderId: 'f-sender', currency: 'CNY', userId: 'f-1', share: got.share, traceId: 't' });
  t.equal(late, 'taken', 'the journal refuses a second claim of share 0');
  const retry = await l.asUser('f-1', 'POST', `/v1/packets/${P}/grab`);
  t.equal(retry.statusCode, 201, JSON.stringify(retry.json));
  t.not(retry.json.seq, 0, 'f-1 gets a share nobody has');
  const again = await l.asUser('f-2', 'POST', `/v1/packets/${P}/grab`);
  t.same([again.statusCode, again.json.seq], [200, 0], 'f-2 keeps share 0');
  const rest = await Promise.all(['f-3', 'f-4', 'f-5', 'f-6'].map((u) => l.asUser(u, 'POST', `/v1/packets/${P}/grab`)));
  const told = [other, retry, ...rest].filter((r) => r.statusCode === 201);
  t.same(told.map((r) => r.json.seq).sort(), [0, 1, 2, 3, 4], 'five shares, five users');
  t.equal(told.reduce((s, r) => s + r.json.amount, 0), 500, 'the answers add up to the packet, not more');
  await l.waitFor('finished', async () => (await l.rt.pool.query('select status from packets where packet_id = $1', [P])).rows[0]?.status === 'finished');
  t.same((await l.cleanFold()).anomalies, [], 'the ledger refused nothing');
});

t.test('a packet whose Redis state was lost expires: the keeper restores it and refunds the rest', async (t) => {
  const l = await startTestLedger(t, { crediting: true, config: { packetMinExpiryMs: 1_000 } });
  await fundedUser(l, 'e-sender', 1_000);
  const created = await l.asUser('e-sender', 'POST', '/v1/packets', { amount: 400, currency: 'CNY', count: 4, expirySeconds: 1 }, { 'idempotency-key': 'expire-lost-1' });
  t.equal(created.statusCode, 201, JSON.stringify(created.json));
  const P = created.json.packetId;
  const got = await l.asUser('e-1', 'POST', `/v1/packets/${P}/grab`);
  t.equal(got.statusCode, 201);
  await l.waitFor('claim projected', async () => (await count(l, 'select count(*)::int as n from packet_claims where packet_id = $1', [P])) === 1);
  await l.rt.redis.del(...(await l.rt.redis.keys(`${l.ns}:{pk:${P}}:*`)));
  await new Promise((r) => setTimeout(r, 1_100));
  const keeper = new PacketKeeper(l.rt);
  t.teardown(() => keeper.stop());
  const round = await keeper.runOnce();
  t.match(round, { closed: 1, refunded: 1 }, 'closed and refunded although Redis had lost it');
  await l.waitFor('refunded', async () => (await l.rt.pool.query('select status from packets where packet_id = $1', [P])).rows[0]?.status === 'refunded');
  t.match(await wallet(l, 'e-sender'), { available: 1_000 - got.json.amount }, 'the sender has back all but the grabbed share');
});

t.test('a claim accepted after Redis restored its packet: the share leaves the unclaimed list, and the refund at expiry is what no claim holds', async (t) => {
  const l = await startTestLedger(t, { crediting: true, config: { packetMinExpiryMs: 1_000 } });
  await fundedUser(l, 'g-sender', 1_000);
  const created = await l.asUser('g-sender', 'POST', '/v1/packets', { amount: 500, currency: 'CNY', count: 4, expirySeconds: 2 }, { 'idempotency-key': 'settle-1' });
  t.equal(created.statusCode, 201, JSON.stringify(created.json));
  const P = created.json.packetId;
  const grabs = new PacketGrabs(l.rt.redis, l.ns);
  const got = await grabs.grab(P, 'g-1', Date.now()); // decided in Redis; its claim is still on its way
  if (got.outcome !== 'claimed') throw new Error(got.outcome);
  await l.rt.redis.del(...(await l.rt.redis.keys(`${l.ns}:{pk:${P}}:*`)));
  const journal = new Journal({ pool: l.rt.pool, topics: l.rt.topics, shards: l.rt.cfg.journalShards, maxBatch: 10 });
  const fence = new ProjectionFence(l.rt);
  t.teardown(() => fence.close());
  t.ok(await new PacketRestorer(new PacketReader(l.rt.pool), grabs, fence, journal).restore(P, Date.now() + 5_000), 'restored without the in-flight claim');
  const late = await new PacketClaims(journal, grabs).record({ packetId: P, senderId: 'g-sender', currency: 'CNY', userId: 'g-1', share: got.share, traceId: 't' });
  t.match(late, { first: true }, 'the late claim is accepted: nobody else had its share');
  await new Promise((r) => setTimeout(r, 2_100));
  const keeper = new PacketKeeper(l.rt);
  t.teardown(() => keeper.stop());
  t.match(await keeper.runOnce(), { refunded: 1 });
  await l.waitFor('refunded', async () => (await l.rt.pool.query('select status from packets where packet_id = $1', [P])).rows[0]?.status === 'refunded');
  t.match(await wallet(l, 'g-sender'), { available: 1_000 - got.share.amount }, 'the refund is the packet less the late claim');
  t.same((await l.cleanFold()).anomalies, [], 'the ledger refused nothing');
});
