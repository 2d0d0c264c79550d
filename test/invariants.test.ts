import t from 'tap';
import { spawnSync } from 'node:child_process';
import { account } from '../domain/accounts.ts';
import { startTestLedger } from './helpers/ledger.ts';

function command(ns: string): { status: number | null; report: any } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'bin/invariants.ts'], { env: { ...process.env, LEDGER_NAMESPACE: ns }, encoding: 'utf8' });
  return { status: r.status, report: JSON.parse(r.stdout) };
}

t.test('the invariant check passes on a healthy ledger and names each kind of corruption', async (t) => {
  const l = await startTestLedger(t, { payouts: true });
  const act = await l.activity({ budget: 5_000 });
  for (const u of ['u-a', 'u-b']) {
    const g = await l.signed('POST', '/v1/grants', { activityId: act, sceneId: 's', orderNo: `o-${u}`, userId: u, amount: 1_000, currency: 'CNY' });
    t.equal(g.statusCode, 201);
  }
  const w = await l.asUser('u-a', 'POST', '/v1/wallets/u-a/withdrawals', { amount: 700, currency: 'CNY' }, { 'idempotency-key': 'inv-00001' });
  t.equal(w.statusCode, 201);
  await l.waitFor('payout settled', async () => (await l.rt.pool.query(`select status from withdrawals`)).rows[0]?.status === 'settled');

  const healthy = await l.admin('GET', '/v1/admin/invariants');
  t.match(healthy.json, { ok: true, violations: [], settledPayouts: 1 });
  const cli = command(l.ns);
  t.equal(cli.status, 0, 'npm run invariants exits 0 on a healthy ledger');
  t.equal(cli.report.ok, true);

  // Corrupt the projection the ways a bug could.
  const db = l.rt.pool;
  await db.query(`update account_balances set balance = balance - 2000 where account = $1`, [account.user('u-b', 'pending')]);
  const withdrawal = (await db.query(`select withdrawal_id, resolved_event_id from withdrawals`)).rows[0];
  await db.query(`delete from postings where event_id = $1`, [withdrawal.resolved_event_id]);
  const ev = (await db.query(`select event_id from postings where account = $1 limit 1`, [account.activityBudget(act)])).rows[0].event_id;
  await db.query(`update postings set amount = amount + 1 where event_id = $1 and leg = 0`, [ev]);

  const broken = await l.admin('GET', '/v1/admin/invariants');
  t.equal(broken.json.ok, false);
  const kinds = new Set(broken.json.violations.map((v: any) => v.kind));
  for (const kind of ['ledger_imbalance', 'unbalanced_event', 'balance_drift', 'negative_balance', 'payout_postings']) {
    t.ok(kinds.has(kind), `reports ${kind}`);
  }
  t.match(broken.json.violations.find((v: any) => v.kind === 'negative_balance'), { account: account.user('u-b', 'pending'), balance: -1000 });
  t.match(broken.json.violations.find((v: any) => v.kind === 'payout_postings'), { withdrawalId: withdrawal.withdrawal_id, postings: 0 });
  const cliBroken = command(l.ns);
  t.equal(cliBroken.status, 1, 'npm run invariants exits 1 when an invariant is broken');
  t.same(new Set(cliBroken.report.violations.map((v: any) => v.kind)), kinds, 'the command and the endpoint agree');

  t.equal((await l.app.inject({ method: 'GET', url: '/v1/admin/invariants' })).statusCode, 401, 'the endpoint needs the admin token');
});
