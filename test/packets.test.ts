import t from 'tap';
import { account } from '../domain/accounts.ts';
import { invalidSplit, packetIdFor } from '../domain/packets.ts';
import { PacketGrabs } from '../infra/packet-grabs.ts';
import { checkInvariants } from '../projections/invariants.ts';
import { PacketKeeper } from '../streams/packet-keeper.ts';
import { fundedUser, startTestLedger, wallet, type TestLedger } from './helpers/ledger.ts';
import { audit } from './helpers/audit.ts';

const PACKETS = { packetMinExpiryMs: 1_000 };

const send = (l: TestLedger, sender: string, key: string, body: Record<string, unknown>) =>
  l.asUser(sender, 'POST', '/v1/packets', body, { 'idempotency-key': key });
const grab = (l: TestLedger, userId: string, packetId: string) => l.asUser(userId, 'POST', `/v1/packets/${packetId}/grab`);
const details = (l: TestLedger, userId: string, packetId: string) => l.asUser(userId, 'GET', `/v1/packets/${packetId}`);

async function projectedPacket(l: TestLedger, packetId: string, status: string) {
  return l.waitFor(`packet ${status}`, async () => {
    const r = await l.rt.pool.query('select status, claimed_count, claimed_amount, refunded_amount from packets where packet_id = $1', [packetId]);
    return r.rows[0]?.status === status ? r.rows[0] : undefined;
  });
}

async function allCredited(l: TestLedger, packetId: string, n: number) {
  await l.waitFor(`${n} shares credited`, async () => (await l.rt.pool.query('select count(*)::int as n from packet_credits where packet_id = $1', [packetId])).rows[0].n === n, 60_000);
}

t.test('send, grab, credit: the total moves to escrow, shares reach each grabber once, details show the best luck', async (t) => {
  const l = await startTestLedger(t, { crediting: true, config: PACKETS });
  await fundedUser(l, 'p-sender', 10_000);
  const created = await send(l, 'p-sender', 'packet-0001', { amount: 1_000, currency: 'CNY', count: 5, greeting: '新年快乐' });
  t.equal(created.statusCode, 201, JSON.stringify(created.json));
  const P = created.json.packetId;
  t.equal(P, packetIdFor('p-sender', 'packet-0001'), 'the packet id comes from the sender and the key');
  t.equal(Date.parse(created.json.expiresAt) - Date.parse(created.json.createdAt), 86_400_000, 'expiry defaults to 24 h');
  await projectedPacket(l, P, 'open');
  t.match(await wallet(l, 'p-sender'), { available: 9_000 }, 'the total left the sender\'s available balance');
  const escrow = await l.rt.pool.query('select balance from account_balances where account = $1', [account.packetEscrow(P)]);
  t.equal(escrow.rows[0].balance, 1_000, 'and sits in the packet\'s escrow');

  const again = await send(l, 'p-sender', 'packet-0001', { amount: 1_000, currency: 'CNY', count: 5, greeting: '新年快乐' });
  t.equal(again.statusCode, 200);
  t.equal(again.headers['idempotent-replayed'], 'true');
  t.equal(again.json.packetId, P);
  const conflict = await send(l, 'p-sender', 'packet-0001', { amount: 1_000, currency: 'CNY', count: 4, greeting: '新年快乐' });
  t.equal(conflict.statusCode, 409);
  t.equal(conflict.json.code, 'IDEMPOTENCY_CONFLICT');

  await new Promise((r) => setTimeout(r, 20));
  const afterCreation = new Date();
  await new Promise((r) => setTimeout(r, 20));
  const shares: number[] = [];
  for (const g of ['g1', 'g2', 'g3', 'g4', 'g5']) {
    const r = await grab(l, g, P);
    t.equal(r.statusCode, 201, JSON.stringify(r.json));
    shares.push(r.json.amount);
  }
  t.equal(shares.reduce((a, b) => a + b, 0), 1_000, 'five grabs take exactly the total');
  const late = await grab(l, 'g6', P);
  t.equal(late.statusCode, 409);
  t.equal(late.json.code, 'PACKET_EMPTY');
  const repeat = await grab(l, 'g2', P);
  t.equal(repeat.statusCode, 200, 'grabbing twice answers the first grab');
  t.equal(repeat.json.amount, shares[1]);
  t.equal(repeat.headers['idempotent-replayed'], 'true');

  await projectedPacket(l, P, 'finished');
  await allCredited(l, P, 5);
  for (const [i, g] of ['g1', 'g2', 'g3', 'g4', 'g5'].entries()) t.match(await wallet(l, g), { available: shares[i], pending: 0 }, `${g} credited once`);

  const seen = await details(l, 'p-sender', P);
  t.equal(seen.statusCode, 200);
  t.match(seen.json, { status: 'finished', claimedCount: 5, claimedAmount: 1_000, refundedAmount: 0, greeting: '新年快乐' });
  t.same(seen.json.claims.map((c: { userId: string }) => c.userId), ['g1', 'g2', 'g3', 'g4', 'g5'], 'who got what, in grab order');
  t.ok(seen.json.claims.every((c: { creditedAt: string | null }) => c.creditedAt !== null), 'and when it arrived');
  const most = Math.max(...shares);
  t.equal(seen.json.bestLuck.amount, most);
  t.equal(seen.json.bestLuck.userId, `g${shares.indexOf(most) + 1}`, 'best luck: the largest share, the earliest grab on a tie');
  const grabber = await details(l, 'g3', P);
  t.equal(grabber.json.claims.length, 5, 'a grabber sees the details too');
  const outsider = await details(l, 'nobody', P);
  t.equal(outsider.statusCode, 200);
  t.equal(outsider.json.claims, null, 'someone who neither sent nor grabbed does not see who got what');

  // The split is in the creation event, and it is the one the grabs were paid from.
  const fold = await l.cleanFold();
  const packet = fold.packets.get(P)!;
  t.equal(invalidSplit(1_000, 5, packet.shares), null, 'the recorded split follows the rule');
  t.same([...fold.packetClaims.values()].filter((c) => c.packetId === P).sort((a, b) => a.seq - b.seq).map((c) => c.amount), packet.shares);
  t.same(shares, packet.shares, 'grabs took the shares in split order');
  const { rows } = await l.rt.pool.query<{ account: string; balance: number }>('select account, balance from account_balances');
  t.same(Object.fromEntries(rows.map((r) => [r.account, r.balance]).sort()), Object.fromEntries([...fold.balances].map(([a, b]) => [a, b.balance]).sort()), 'a replay of the log yields exactly the projected balances');
  t.same(fold.anomalies, []);
  const inv = await checkInvariants(l.rt.pool, { budgetLag: async () => 0 });
  t.ok(inv.ok, JSON.stringify(inv));
  const whole = await audit(l);
  t.ok(whole.clean, `the replay audit is clean: ${JSON.stringify(whole.byKind)}`);
  // A range that starts after the creation: the packet comes from the projection, rewound.
  const ranged = await audit(l, { from: afterCreation, to: new Date() });
  t.ok(ranged.clean, `a range audit of the grabs alone is clean: ${JSON.stringify(ranged.differences.slice(0, 3))}`);
  t.equal(ranged.flows.PacketClaimed?.count, 5);
});

t.test('1,000 concurrent grabbers on a packet of 10: exactly 10 claims, summing to the total', async (t) => {
  const l = await startTestLedger(t, { crediting: true, config: PACKETS });
  await fundedUser(l, 'hot-sender', 5_000);
  const created = await send(l, 'hot-sender', 'hot-packet-1', { amount: 888, currency: 'CNY', count: 10 });
  t.equal(created.statusCode, 201);
  const P = created.json.packetId;
  const answers = await Promise.all(Array.from({ length: 1_000 }, (_, i) => grab(l, `crowd-${i}`, P)));
  const won = answers.filter((a) => a.statusCode === 201);
  t.equal(won.length, 10, 'exactly count grabs succeed');
  t.equal(answers.filter((a) => a.statusCode === 409 && a.json.code === 'PACKET_EMPTY').length, 990, 'everyone else is turned away');
  t.equal(won.reduce((s, a) => s + a.json.amount, 0), 888);
  t.same(won.map((a) => a.json.seq).sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 'each share once');

  await projectedPacket(l, P, 'finished');
  await allCredited(l, P, 10);
  const claims = await l.rt.pool.query('select count(*)::int as n, sum(amount)::int as s from packet_claims where packet_id = $1', [P]);
  t.same(claims.rows[0], { n: 10, s: 888 }, 'the ledger holds exactly 10 claims');
  const ledgerEvents = await l.rt.pool.query(`select event_type, count(*)::int as n from ledger_events where event_type like 'Packet%' group by 1 order by 1`);
  t.same(ledgerEvents.rows, [{ event_type: 'PacketClaimed', n: 10 }, { event_type: 'PacketCreated', n: 1 }, { event_type: 'PacketShareCredited', n: 10 }], 'turned-away grabs never reached the ledger');
  const escrow = await l.rt.pool.query('select balance from account_balances where account = $1', [account.packetEscrow(P)]);
  t.equal(escrow.rows[0].balance, 0);
  const credited = await l.rt.pool.query(`select coalesce(sum(balance), 0)::int as s from account_balances where account like 'user:crowd-%:available'`);
  t.equal(credited.rows[0].s, 888, 'the grabbers were credited the total, once');
});

t.test('expiry: the unclaimed rest is refunded once, with two keepers racing and one that crashed midway', async (t) => {
  const l = await startTestLedger(t, { crediting: true, config: PACKETS });
  await fundedUser(l, 'exp-sender', 3_000);
  const created = await send(l, 'exp-sender', 'expiring-1', { amount: 1_000, currency: 'CNY', count: 4, expirySeconds: 2 });
  t.equal(created.statusCode, 201);
  const P = created.json.packetId;
  const got: number[] = [];
  for (const g of ['e1', 'e2']) got.push((await grab(l, g, P)).json.amount);
  const expiresAt = Date.parse(created.json.expiresAt);
  await projectedPacket(l, P, 'open');

  const keepers = [new PacketKeeper(l.rt), new PacketKeeper(l.rt), new PacketKeeper(l.rt)];
  t.teardown(() => Promise.all(keepers.map((k) => k.stop())));
  const early = await keepers[0]!.runOnce(expiresAt - 500);
  t.same({ closed: early.closed, refunded: early.refunded }, { closed: 0, refunded: 0 }, 'nothing is refunded before expiry');

  await new Promise((r) => setTimeout(r, Math.max(0, expiresAt - Date.now() + 50)));
  const tooLate = await grab(l, 'e3', P);
  t.equal(tooLate.statusCode, 410);
  t.equal(tooLate.json.code, 'PACKET_EXPIRED');

  // A keeper that closed the packet and died before it produced the refund.
  const grabs = new PacketGrabs(l.rt.redis, l.ns);
  const crashed = await grabs.close(P, Date.now());
  const rest = 1_000 - got[0]! - got[1]!;
  t.same(crashed, { rest }, 'the close fixed the unclaimed rest');
  // Two keepers, racing, after the restart.
  const [a, b] = await Promise.all([keepers[1]!.runOnce(), keepers[2]!.runOnce()]);
  t.equal(a.refunded + b.refunded >= 1, true, 'a refund was produced');
  const refunded = await projectedPacket(l, P, 'refunded');
  t.equal(refunded.refunded_amount, rest);
  await keepers[0]!.runOnce(); // and once more, after the refund is projected
  await new Promise((r) => setTimeout(r, 500));
  const events = await l.rt.pool.query(`select count(*)::int as n from ledger_events where event_type = 'PacketRefunded'`);
  t.equal(events.rows[0].n, 1, 'one refund in the ledger');
  const postings = await l.rt.pool.query(`select sum(amount)::int as s from postings where account = $1 and amount > 0 and event_id in (select event_id from ledger_events where event_type = 'PacketRefunded')`, [account.user('exp-sender', 'available')]);
  t.equal(postings.rows[0].s, rest, 'the sender got the rest back once');
  t.match(await wallet(l, 'exp-sender'), { available: 3_000 - 1_000 + rest });
  const escrow = await l.rt.pool.query('select balance from account_balances where account = $1', [account.packetEscrow(P)]);
  t.equal(escrow.rows[0].balance, 0, 'the escrow is empty');
  const after = await grab(l, 'e4', P);
  t.equal(after.json.code, 'PACKET_EXPIRED', 'a refunded packet turns grabs away');
  const mine = await grab(l, 'e1', P);
  t.equal(mine.statusCode, 200, 'a grabber can still see what they got');
  t.equal(mine.json.amount, got[0]);
  const inv = await checkInvariants(l.rt.pool, { budgetLag: async () => 0 });
  t.ok(inv.ok, JSON.stringify(inv));
  await allCredited(l, P, 2);
  const report = await audit(l);
  t.ok(report.clean, `the replay audit is clean: ${JSON.stringify(report.differences.slice(0, 3))}`);
});

t.test('bad input gets a clear 4xx and writes nothing', async (t) => {
  const l = await startTestLedger(t, { crediting: true, config: PACKETS });
  await fundedUser(l, 'bad-sender', 500);
  const before = (await l.rt.pool.query('select count(*)::int as n from ledger_events')).rows[0].n;
  const cases: [string, Record<string, unknown>, number, string, RegExp?][] = [
    ['count above the total in fen', { amount: 5, currency: 'CNY', count: 6 }, 422, 'COUNT_ABOVE_TOTAL', /5 fen cannot give 6 shares/],
    ['zero shares', { amount: 100, currency: 'CNY', count: 0 }, 400, 'INVALID_FIELD', /\/count must be >= 1/],
    ['a huge count', { amount: 100, currency: 'CNY', count: 1_000_000 }, 422, 'COUNT_OVER_CAP', /at most 100 shares/],
    ['a count beyond any integer', { amount: 100, currency: 'CNY', count: 1e300 }, 400, 'INVALID_FIELD'],
    ['a zero total', { amount: 0, currency: 'CNY', count: 1 }, 400, 'INVALID_AMOUNT'],
    ['a fractional total', { amount: 10.5, currency: 'CNY', count: 1 }, 400, 'INVALID_AMOUNT'],
    ['a total over the cap', { amount: 20_001, currency: 'CNY', count: 1 }, 422, 'AMOUNT_OVER_CAP'],
    ['another currency', { amount: 100, currency: 'USD', count: 1 }, 422, 'CURRENCY_MISMATCH'],
    ['an expiry over 24 h', { amount: 100, currency: 'CNY', count: 1, expirySeconds: 86_401 }, 422, 'EXPIRY_OUT_OF_RANGE'],
    ['a greeting too long', { amount: 100, currency: 'CNY', count: 1, greeting: 'x'.repeat(65) }, 400, 'INVALID_FIELD'],
    ['an unknown field', { amount: 100, currency: 'CNY', count: 1, sender: 'someone-else' }, 400, 'UNKNOWN_FIELD'],
    ['more than the balance', { amount: 501, currency: 'CNY', count: 1 }, 409, 'INSUFFICIENT_FUNDS', /available balance is 500 fen/],
  ];
  for (const [what, body, status, code, message] of cases) {
    const r = await send(l, 'bad-sender', `bad-${code}-${status}`, body);
    t.equal(r.statusCode, status, `${what}: ${status}`);
    t.equal(r.json.code, code, `${what}: ${code}`);
    if (message) t.match(r.json.message, message, `${what}: says why`);
  }
  const noKey = await l.asUser('bad-sender', 'POST', '/v1/packets', { amount: 100, currency: 'CNY', count: 1 });
  t.equal(noKey.json.code, 'MISSING_IDEMPOTENCY_KEY');
  const anonymous = await l.app.inject({ method: 'POST', url: '/v1/packets', payload: { amount: 100, currency: 'CNY', count: 1 }, headers: { 'idempotency-key': 'anon-0001' } });
  t.equal(anonymous.statusCode, 401);
  const unknown = await grab(l, 'someone', '00000000-0000-8000-8000-000000000000');
  t.equal(unknown.statusCode, 404);
  t.equal(unknown.json.code, 'PACKET_NOT_FOUND');
  const badId = await grab(l, 'someone', 'not-a-packet');
  t.equal(badId.statusCode, 400);
  t.equal((await details(l, 'someone', '00000000-0000-8000-8000-000000000000')).statusCode, 404);

  const requests = await l.rt.pool.query('select count(*)::int as n from packet_requests');
  t.equal(requests.rows[0].n, 0, 'no refused packet was recorded');
  await new Promise((r) => setTimeout(r, 300));
  t.equal((await l.rt.pool.query('select count(*)::int as n from ledger_events')).rows[0].n, before, 'and nothing reached the ledger');
  t.match(await wallet(l, 'bad-sender'), { available: 500 });

  // A withdrawal and a packet cannot both spend one balance.
  const packet = await send(l, 'bad-sender', 'spend-all-1', { amount: 400, currency: 'CNY', count: 2 });
  t.equal(packet.statusCode, 201);
  const sameMoney = await send(l, 'bad-sender', 'spend-all-2', { amount: 200, currency: 'CNY', count: 2 });
  t.equal(sameMoney.statusCode, 409, 'the first packet holds its total at once, before it is projected');
  t.equal(sameMoney.json.details.available, 100);
});
