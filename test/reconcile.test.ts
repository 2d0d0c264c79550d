import t from 'tap';
import { randomUUID } from 'node:crypto';
import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { account } from '../domain/accounts.ts';
import { creditFor } from '../domain/grants.ts';
import { deterministicId } from '../domain/ids.ts';
import { repair } from '../reconcile/repair.ts';
import { checkInvariants } from '../projections/invariants.ts';
import { startTestLedger, type TestLedger } from './helpers/ledger.ts';
import { audit, ofKind } from './helpers/audit.ts';
import type { AuditReport } from '../reconcile/audit.ts';
import { fundingEventIdFor } from '../domain/grants.ts';

async function grant(l: TestLedger, activityId: string, userId: string, orderNo: string, amount: number) {
  const g = await l.signed('POST', '/v1/grants', { activityId, sceneId: 's', orderNo, userId, amount, currency: 'CNY' });
  if (g.statusCode !== 201) throw new Error(`grant failed: ${JSON.stringify(g.json)}`);
  return g.json;
}

async function withdraw(l: TestLedger, userId: string, amount: number, key = `k-${userId}-${amount}`) {
  const w = await l.asUser(userId, 'POST', `/v1/wallets/${userId}/withdrawals`, { amount, currency: 'CNY' }, { 'idempotency-key': key });
  if (w.statusCode !== 201) throw new Error(`withdrawal failed: ${JSON.stringify(w.json)}`);
  return w.json.withdrawalId as string;
}

/** A report without what differs from run to run. */
const comparable = (r: AuditReport) => ({ ...r, runId: null, startedAt: null, finishedAt: null, range: null, partitions: null, checked: { ...r.checked, threads: null } });

const settled = (l: TestLedger, n: number) => l.waitFor(`${n} settled payouts`, async () =>
  (await l.rt.pool.query(`select count(*)::int as n from withdrawals where status = 'settled'`)).rows[0].n >= n);

t.test('a clean ledger gives a clean report; each injected difference is found with its kind and identity', async (t) => {
  const l = await startTestLedger(t, { crediting: true, payouts: true });
  const act = await l.activity({ budget: 100_000 });
  const users = ['ra', 'rb', 'rc', 'rd', 're'];
  for (const [i, u] of users.entries()) {
    await grant(l, act, u, `o-${u}-1`, 1_000 + i);
    await grant(l, act, u, `o-${u}-2`, 500);
  }
  const payouts = new Map<string, string>();
  for (const u of users) payouts.set(u, await withdraw(l, u, 700));
  await settled(l, users.length);

  const clean = await audit(l);
  t.equal(clean.clean, true, `clean: ${JSON.stringify(clean.differences.slice(0, 3))}`);
  t.same(clean.differences, []);
  // 1 funding, 10 grants, 10 credits (some forced by the withdrawals), 5 withdrawals, 5 settlements.
  t.equal(clean.events - clean.duplicates, 31, 'every event of the log was folded');
  t.match(clean.flows, { BudgetFunded: { count: 1, amount: 100_000 }, TokenIssued: { count: 10 }, PayoutSettled: { count: 5, amount: 3_500 } });
  t.equal(clean.checked.providerPayments, 5);
  t.equal(clean.checked.threads, 2, 'the whole log was folded in two threads');

  // Now break things, one of each kind.
  const psp = l.provider!.records.pool;
  await psp.query('delete from payments where payout_id = $1', [payouts.get('ra')]);
  await psp.query(
    `insert into payments(payout_id, user_id, amount, currency, status, provider_ref)
     select payout_id, user_id, amount, currency, status, 'psp-duplicate' from payments where payout_id = $1`, [payouts.get('rb')]);
  await psp.query('update payments set amount = amount + 1 where payout_id = $1', [payouts.get('rc')]);
  const stranger = randomUUID();
  await psp.query(`insert into payments(payout_id, user_id, amount, currency, status, provider_ref) values ($1, 'rz', 999, 'CNY', 'succeeded', 'psp-stranger')`, [stranger]);

  const db = l.rt.pool;
  const droppedToken = (await db.query(`select token_id from tokens where user_id = 'rd' and order_no = 'o-rd-2'`)).rows[0].token_id;
  await db.query('delete from tokens where token_id = $1', [droppedToken]);
  const tamperedEvent = (await db.query(`select token_id from tokens where user_id = 're' and order_no = 'o-re-1'`)).rows[0].token_id;
  await db.query('update postings set amount = amount + 1 where event_id = $1 and leg = 1', [tamperedEvent]);
  await db.query('update account_balances set balance = balance + 5 where account = $1', [account.user('rd', 'available')]);

  // Push the budget past what was funded by tampering with the command side's budget (a lying command side).
  await l.rt.pool.query('update budgets set funded = funded + 50000 where activity_id = $1', [act]);
  for (let i = 1; i <= 5; i++) await grant(l, act, 'rf', `o-rf-over-${i}`, 20_000);
  // A second credit for a token, under an id that is not the derived one (a buggy crediting client).
  const twice = (await db.query(`select token_id, activity_id, user_id, amount, currency from tokens where user_id = 'ra' limit 1`)).rows[0];
  await l.rt.publisher.publish('TokenCredited', { ...creditFor({ ...twice, tokenId: twice.token_id, activityId: twice.activity_id, userId: twice.user_id, traceId: 't' }, Date.now()), eventId: deterministicId('rogue', twice.token_id) });
  await l.waitFor('tokens credited', async () => (await db.query(`select count(*)::int as n from tokens where status = 'pending'`)).rows[0].n === 0);

  const r = await audit(l);
  t.equal(r.clean, false);
  t.match(ofKind(r, 'missing_payout'), [{ payoutId: payouts.get('ra'), userId: 'ra', expected: 700, actual: 'no payment' }]);
  t.match(ofKind(r, 'duplicate_payout'), [{ payoutId: payouts.get('rb'), userId: 'rb', providerRef: 'psp-duplicate', repair: 'flag_duplicate' }]);
  t.match(ofKind(r, 'amount_mismatch'), [{ payoutId: payouts.get('rc'), userId: 'rc', expected: '700 CNY to rc', actual: '701 CNY to rc' }]);
  t.match(ofKind(r, 'payout_without_ledger_entry'), [{ payoutId: stranger, userId: 'rz', actual: 999 }]);
  const drift = ofKind(r, 'projection_drift');
  t.ok(drift.some((d) => d.tokenId === droppedToken && d.userId === 'rd' && d.orderNo === 'o-rd-2' && d.actual === 'missing'), 'the dropped token row');
  t.ok(drift.some((d) => d.events.includes(tamperedEvent) && d.userId === 're'), 'the tampered posting, by event');
  t.match(drift.filter((d) => d.account), [{ account: account.user('rd', 'available'), userId: 'rd', expected: 1_503 - 700, actual: 1_508 - 700 }], 'the tampered balance');
  t.match(ofKind(r, 'ledger_imbalance'), [{ currency: 'CNY', expected: 0, actual: 1 }]);
  const overIssue = ofKind(r, 'budget_over_issue');
  t.equal(overIssue.length, 1);
  // Funded 100,000; issued 5 × 1,000 + 10 + 5 × 500 + 5 × 20,000 = 107,510.
  t.match(overIssue[0], { activityId: act, account: account.activityBudget(act), actual: -7_510 });
  const latest = (await db.query(`select token_id from tokens where order_no = 'o-rf-over-5'`)).rows[0].token_id;
  t.same(overIssue[0]!.events, [latest], 'names the latest grant, which alone makes up the excess');
  t.match(ofKind(r, 'token_credited_twice'), [{ tokenId: twice.token_id, userId: 'ra' }]);
  t.equal(r.checked.threads, 1, 'an event the rules refused makes the audit fold the log in one piece');
  t.same(comparable(await audit(l, { workers: 1 })), comparable(r), 'the same report as an audit folding in one thread');

  // The command: same findings, exit code 1, files finance can keep.
  const out = mkdtempSync(join(tmpdir(), 'audit-'));
  // Asynchronously: the provider simulator answers from this process.
  const cli = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'bin/reconcile.ts', '--out', out, '--credit-grace', '0', '--payout-grace', '0'], {
    env: { ...process.env, LEDGER_NAMESPACE: l.ns, PROVIDER_URL: l.provider!.url, PROVIDER_API_KEY: l.provider!.apiKey }, encoding: 'utf8',
  }).then(() => ({ status: 0, stdout: '', stderr: '' }), (err) => ({ status: err.code as number, stdout: err.stdout as string, stderr: err.stderr as string }));
  t.equal(cli.status, 1, `exit 1 when there are differences (stderr: ${cli.stderr.slice(0, 300)})`);
  t.match(cli.stdout, /DIFFERENCE\(S\)/);
  t.match(cli.stdout, /missing_payout\s+1/);
  const files = readdirSync(out);
  const json = JSON.parse(readFileSync(join(out, files.find((f) => f.endsWith('.json'))!), 'utf8'));
  t.same(json.byKind, r.byKind, 'the JSON report has the same differences');
  const csv = readFileSync(join(out, files.find((f) => f.endsWith('.csv'))!), 'utf8').trim().split('\n');
  t.equal(csv[0], 'kind,activityId,userId,orderNo,tokenId,payoutId,providerRef,account,currency,expected,actual,events,repair,message,packetId');
  t.equal(csv.length - 1, r.differences.length, 'one CSV row per difference');
  const stored = await db.query(`select kind, differences from reconcile_runs where kind = 'audit' order by started_at desc limit 1`);
  t.equal(stored.rows[0].differences, r.differences.length, 'the command keeps its report in Postgres');

  // Exit 2: the audit itself could not run, which is not the same as finding differences.
  const badArg = spawnSync(process.execPath, ['--import', 'tsx', 'bin/reconcile.ts', '--from', 'yesterday-ish'], { encoding: 'utf8' });
  t.equal(badArg.status, 2);
  t.match(badArg.stderr, /--from must be a time/);
  const noDb = spawnSync(process.execPath, ['--import', 'tsx', 'bin/reconcile.ts', '--no-provider', '--out', out], {
    env: { ...process.env, LEDGER_NAMESPACE: l.ns, DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/no_such_database' }, encoding: 'utf8',
  });
  t.equal(noDb.status, 2, 'Postgres unreachable: exit 2');
  t.match(noDb.stderr, /the audit failed: .*no_such_database/);
});

t.test('repair emits one compensation per repairable difference; after it the audit is clean, and a second repair is a no-op', async (t) => {
  // No crediting processor: tokens stay pending unless a withdrawal forces their credit.
  const l = await startTestLedger(t, { crediting: false, payouts: true });
  const act = await l.activity({ budget: 50_000 });
  for (const u of ['pa', 'pb', 'pc']) await grant(l, act, u, `o-${u}`, 1_000);
  const pending = await grant(l, act, 'pd', 'o-pd', 321);
  const wc = await withdraw(l, 'pc', 600);
  await settled(l, 1);

  // The provider goes down; two withdrawals stay in flight, then the processor stops.
  l.provider!.configure({ outage: true });
  const wa = await withdraw(l, 'pa', 400);
  const wb = await withdraw(l, 'pb', 500);
  await l.waitFor('both tried', async () => l.provider!.stats.outageRefused >= 2);
  await l.payouts!.stop();
  // What the provider did meanwhile: refused one, paid the other, and paid the settled one twice.
  const psp = l.provider!.records.pool;
  await psp.query(`insert into payments(payout_id, user_id, amount, currency, status, reason, provider_ref) values ($1, 'pa', 400, 'CNY', 'rejected', 'ACCOUNT_CLOSED', 'psp-refused')`, [wa]);
  await psp.query(`insert into payments(payout_id, user_id, amount, currency, status, provider_ref) values ($1, 'pb', 500, 'CNY', 'succeeded', 'psp-late')`, [wb]);
  await psp.query(`insert into payments(payout_id, user_id, amount, currency, status, provider_ref) values ($1, 'pc', 600, 'CNY', 'succeeded', 'psp-twice')`, [wc]);
  // With no grace, only payments made before the audit's start are due; one made in the same
  // millisecond is not yet (times are compared in whole milliseconds), so let the clock move on.
  await new Promise((r) => setTimeout(r, 5));

  const before = await audit(l);
  t.same(before.byKind, { duplicate_payout: 1, payout_unresolved: 2, token_never_credited: 1 });
  t.match(ofKind(before, 'payout_unresolved'), [
    { payoutId: [wa, wb].sort()[0] }, { payoutId: [wa, wb].sort()[1] },
  ]);
  t.same(new Set(ofKind(before, 'payout_unresolved').map((d) => d.repair)), new Set(['settle_payout', 'return_payout']));
  t.match(ofKind(before, 'token_never_credited'), [{ tokenId: pending.tokenId, userId: 'pd', orderNo: 'o-pd', repair: 'credit_token' }]);

  // The command repairs, audits again and exits 0 when that second audit is clean.
  const out = mkdtempSync(join(tmpdir(), 'repair-'));
  const cli = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'bin/reconcile.ts', '--repair', '--out', out, '--credit-grace', '0', '--payout-grace', '0'], {
    env: { ...process.env, LEDGER_NAMESPACE: l.ns, PROVIDER_URL: l.provider!.url, PROVIDER_API_KEY: l.provider!.apiKey }, encoding: 'utf8',
  }).then((r) => ({ status: 0, stdout: r.stdout }), (err) => ({ status: err.code as number, stdout: `${err.stdout}\n${err.stderr}` }));
  t.equal(cli.status, 0, `exit 0 once repaired: ${cli.stdout.slice(-600)}`);
  t.match(cli.stdout, /repair: 4 compensation event\(s\) emitted, 0 already in the ledger/);
  for (const type of ['PayoutDuplicateFlagged', 'PayoutFailed', 'PayoutSettled', 'TokenCredited']) t.match(cli.stdout, new RegExp(`\\n  ${type} `));
  t.match(cli.stdout, /after repair:[\s\S]*CLEAN/);
  t.equal(readdirSync(out).filter((f) => f.endsWith('.csv')).length, 2, 'both audits are kept as files');
  const after = await audit(l);
  t.equal(after.clean, true, `clean after repair: ${JSON.stringify(after.differences.slice(0, 2))}`);

  const db = l.rt.pool;
  const balance = async (acct: string) => (await db.query('select balance from account_balances where account = $1', [acct])).rows[0]?.balance ?? 0;
  t.equal(await balance(account.user('pa', 'available')), 1_000, 'the refused payout went back to pa');
  t.equal(await balance(account.user('pd', 'available')), 321, 'the missing credit was made');
  t.equal(await balance(account.externalPayout()), 600 + 500 + 600, 'external:payout equals what the provider paid');
  t.equal(await balance(account.payoutRecovery()), -600, 'the extra payment is booked for recovery');
  t.match(await checkInvariants(db, { budgetLag: async () => 0 }), { ok: true, violations: [] }, 'the ledger invariants hold after repair');

  const admin = l.rt.kafka.admin();
  await admin.connect();
  const offsets = async () => JSON.stringify(await admin.fetchTopicOffsets(l.rt.topics.wallet));
  const endsBefore = await offsets();
  const second = await repair({ pool: l.rt.pool, publisher: l.rt.publisher }, before.differences, before.runId);
  t.same(second.emitted, [], 'repeating the repair emits nothing');
  t.equal(second.skipped, 4, 'every compensation is already in the ledger');
  t.equal(await offsets(), endsBefore, 'the wallet topic did not grow');
  await admin.disconnect();
});

t.test('folded in threads, the whole log gives the report of one fold: drift found by digests, and an event id on several partitions', async (t) => {
  const l = await startTestLedger(t, { crediting: true, payouts: true });
  const act = await l.activity({ budget: 100_000 });
  const users = ['pa', 'pb', 'pc', 'pd', 'pe', 'pf', 'pg', 'ph'];
  for (const [i, u] of users.entries()) await grant(l, act, u, `o-${u}`, 100 + i);
  await withdraw(l, 'pa', 50, 'k-pa-fifty');
  await settled(l, 1);
  const db = l.rt.pool;
  const dropped = (await db.query(`select token_id from tokens where user_id = 'pb'`)).rows[0].token_id;
  await db.query('delete from tokens where token_id = $1', [dropped]);
  const tampered = (await db.query(`select token_id from tokens where user_id = 'pc'`)).rows[0].token_id;
  await db.query('update postings set amount = amount + 1 where event_id = $1 and leg = 1', [tampered]);
  await db.query('update account_balances set balance = balance + 5 where account = $1', [account.user('pd', 'available')]);

  const threaded = await audit(l);
  t.equal(threaded.checked.threads, 2, 'no refused event: the parts were merged');
  t.ok(ofKind(threaded, 'projection_drift').some((d) => d.tokenId === dropped && d.actual === 'missing'), 'the dropped token row');
  t.ok(ofKind(threaded, 'projection_drift').some((d) => d.events.includes(tampered)), 'the tampered posting');
  t.ok(ofKind(threaded, 'projection_drift').some((d) => d.account === account.user('pd', 'available')), 'the tampered balance');
  t.same(comparable(threaded), comparable(await audit(l, { workers: 1 })), 'the same report as one fold');

  // The same funding event, copied onto every partition: a fold of the whole log applies it once.
  const funding = { eventId: fundingEventIdFor(act, 'copied'), occurredAt: Date.now(), activityId: act, traceId: 't', fundingId: 'copied', amount: 7, currency: 'CNY' as const, fundedBy: 'test' };
  await l.rt.publisher.publish('BudgetFunded', funding);
  const producer = l.rt.kafka.producer();
  await producer.connect();
  t.teardown(() => producer.disconnect());
  for (const topic of [l.rt.topics.budget, l.rt.topics.wallet]) {
    const value = await l.rt.codec.encode(topic, 'BudgetFunded', funding);
    for (let partition = 0; partition < l.rt.cfg.partitions; partition++) await producer.send({ topic, acks: -1, messages: [{ key: act, value, partition }] });
  }
  const copies = 2 * l.rt.cfg.partitions;
  // The audit waits for the projection to reach the log's end, copies included.
  const again = await audit(l);
  t.equal(again.checked.threads, 1, 'the parts shared an event id: folded in one piece');
  t.equal(again.duplicates, copies, `every copy of the funding but its first is a duplicate (${copies})`);
  t.same(comparable(again), comparable(await audit(l, { workers: 1 })), 'the same report as one fold');
  t.same(ofKind(again, 'budget_over_issue'), [], 'funded once');

  // A worker that cannot do its part (here: no schema registry) fails the audit; it does not
  // report the part it could not read as clean.
  await t.rejects(audit(l, { workerCfg: { schemaRegistryUrl: 'http://127.0.0.1:9' } }), /ECONNREFUSED|fetch failed|connect/i, 'the audit itself failed (exit 2)');
});

t.test('a time-range audit covers exactly its range', async (t) => {
  const l = await startTestLedger(t, { crediting: false });
  const act = await l.activity({ budget: 50_000 });
  const batch = async (tag: string) => {
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) ids.push((await grant(l, act, `tr-${tag}${i}`, `o-${tag}-${i}`, 100 + i)).tokenId);
    return ids;
  };
  const pause = () => new Promise((r) => setTimeout(r, 1_100));
  const a = await batch('a');
  await pause();
  const from = new Date();
  const b = await batch('b');
  // A withdrawal inside the range, by a user whose tokens were issued before it: the fold needs the opening state.
  const early = (await l.rt.pool.query(`select user_id from tokens where token_id = $1`, [a[0]])).rows[0].user_id;
  await withdraw(l, early, 50);
  await pause();
  const to = new Date();
  await pause();
  const c = await batch('c');

  const ranged = await audit(l, { from, to });
  // In range: 4 grants, the forced credit of the early user's token, and the withdrawal.
  t.equal(ranged.events, 6, 'reads only the events appended within the range');
  t.same(ranged.partitions.reduce((n, p) => n + p.end - p.start, 0), 6);
  t.same(new Set(ofKind(ranged, 'token_never_credited').map((d) => d.tokenId)), new Set(b), 'reports the range\'s uncredited tokens, and only those');
  t.same(Object.keys(ranged.byKind), ['token_never_credited'], 'nothing else: the opening state made the withdrawal fold cleanly');
  t.match(ranged.range, { from: from.toISOString(), to: to.toISOString() });

  // A whole-log audit that ends at `to`, while the projection already holds batch c: the
  // newer rows are not differences.
  const upTo = await audit(l, { to });
  t.equal(upTo.events, 1 + 8 + 2, 'funding, the first two batches, a credit and a withdrawal');
  t.same(Object.keys(upTo.byKind), ['token_never_credited'], `no drift from the newer rows: ${JSON.stringify(upTo.differences.filter((d) => d.kind !== 'token_never_credited').slice(0, 2))}`);
  t.same(new Set(ofKind(upTo, 'token_never_credited').map((d) => d.tokenId)), new Set([...a.slice(1), ...b]));

  const whole = await audit(l);
  t.equal(whole.events, 1 + 12 + 2, 'the whole log: funding, 12 grants, a credit and a withdrawal');
  t.same(new Set(ofKind(whole, 'token_never_credited').map((d) => d.tokenId)), new Set([...a.slice(1), ...b, ...c]));
});
