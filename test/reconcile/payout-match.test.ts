import t from 'tap';
import fc from 'fast-check';
import { matchPayouts, type ProviderPayment } from '../../reconcile/payout-match.ts';
import { compensationsFor } from '../../reconcile/repair.ts';
import { toCsv, type Difference } from '../../reconcile/differences.ts';
import { MemoryLedger } from '../../domain/ledger.ts';
import { account } from '../../domain/accounts.ts';
import { fundingEventIdFor } from '../../domain/grants.ts';
import { settledEventIdFor, withdrawalIdFor, type WithdrawalRecord } from '../../domain/withdrawals.ts';
import type { LedgerEvent } from '../../domain/events.ts';
import { issued, creditFor } from '../helpers/events.ts';

const NOW = 1_800_000_000_000;
const HOUR = 3_600_000;

/** A consistent world: ledger withdrawals and the provider payments they produced. */
const world = fc.array(fc.record({ amount: fc.integer({ min: 1, max: 100_000 }), outcome: fc.constantFrom('settled', 'failed', 'rejected', 'withdrawing') }), { minLength: 1, maxLength: 30 })
  .map((ws) => {
    const withdrawals = new Map<string, WithdrawalRecord>();
    const payments: ProviderPayment[] = [];
    ws.forEach((w, i) => {
      const id = withdrawalIdFor(`u${i}`, `k${i}`);
      const ref = `psp-${i}`;
      const status = w.outcome as WithdrawalRecord['status'];
      withdrawals.set(id, {
        withdrawalId: id, userId: `u${i}`, amount: w.amount, currency: 'CNY', status, requestedAt: NOW - 2 * HOUR, resolvedAt: status === 'withdrawing' ? null : NOW - HOUR,
        resolvedEventId: status === 'withdrawing' ? null : settledEventIdFor(id), reason: null, providerRef: status === 'settled' ? ref : null,
      });
      // The provider's side of each outcome: paid, refused, nothing (rejected by the ledger), or paid just now (in flight).
      if (status === 'settled') payments.push({ payoutId: id, providerRef: ref, userId: `u${i}`, amount: w.amount, currency: 'CNY', status: 'succeeded', reason: null, createdAt: NOW - HOUR, seq: i });
      if (status === 'failed') payments.push({ payoutId: id, providerRef: ref, userId: `u${i}`, amount: w.amount, currency: 'CNY', status: 'rejected', reason: 'BLOCKED', createdAt: NOW - HOUR, seq: i });
      if (status === 'withdrawing') {
        withdrawals.get(id)!.requestedAt = NOW - 1000;
        payments.push({ payoutId: id, providerRef: ref, userId: `u${i}`, amount: w.amount, currency: 'CNY', status: 'succeeded', reason: null, createdAt: NOW - 500, seq: i });
      }
    });
    return { withdrawals, payments };
  });

const match = (w: { withdrawals: Map<string, WithdrawalRecord>; payments: ProviderPayment[] }, flagged = () => false) =>
  matchPayouts({ withdrawals: w.withdrawals, payments: w.payments, flagged, referenceTime: NOW, graceMs: 60_000 });

t.test('property: a consistent ledger and provider give no difference; one injected fault gives exactly one, of its kind, naming its payout', async (t) => {
  fc.assert(fc.property(world, fc.nat(), fc.constantFrom('delete', 'duplicate', 'amount', 'stranger'), (w, pick, fault) => {
    if (match(w).length !== 0) return false;
    const settled = w.payments.filter((p) => w.withdrawals.get(p.payoutId)!.status === 'settled');
    if (fault !== 'stranger' && settled.length === 0) return true;
    const victim = settled[pick % Math.max(1, settled.length)]!;
    const payments = [...w.payments];
    let expected: { kind: string; payoutId: string };
    switch (fault) {
      case 'delete':
        payments.splice(payments.indexOf(victim), 1);
        expected = { kind: 'missing_payout', payoutId: victim.payoutId };
        break;
      case 'duplicate':
        payments.push({ ...victim, providerRef: 'psp-again', seq: 999 });
        expected = { kind: 'duplicate_payout', payoutId: victim.payoutId };
        break;
      case 'amount':
        payments[payments.indexOf(victim)] = { ...victim, amount: victim.amount + 1 };
        expected = { kind: 'amount_mismatch', payoutId: victim.payoutId };
        break;
      default:
        payments.push({ ...w.payments[0]!, payoutId: 'not-ours', providerRef: 'psp-x', status: 'succeeded', seq: 1000 });
        expected = { kind: 'payout_without_ledger_entry', payoutId: 'not-ours' };
    }
    const found = match({ withdrawals: w.withdrawals, payments });
    return found.length === 1 && found[0]!.kind === expected.kind && found[0]!.payoutId === expected.payoutId;
  }), { numRuns: 400 });
  t.pass('400 worlds');
});

t.test('in-flight work is a difference only after the grace period', async (t) => {
  const id = withdrawalIdFor('u1', 'k');
  const w: WithdrawalRecord = { withdrawalId: id, userId: 'u1', amount: 10, currency: 'CNY', status: 'withdrawing', requestedAt: NOW - 30_000, resolvedAt: null, resolvedEventId: null, reason: null, providerRef: null };
  const paid: ProviderPayment = { payoutId: id, providerRef: 'r', userId: 'u1', amount: 10, currency: 'CNY', status: 'succeeded', reason: null, createdAt: NOW - 30_000, seq: 1 };
  const at = (graceMs: number, payments: ProviderPayment[]) => matchPayouts({ withdrawals: new Map([[id, w]]), payments, flagged: () => false, referenceTime: NOW, graceMs });
  t.same(at(60_000, [paid]), [], 'paid 30 s ago, not yet settled: in flight');
  t.match(at(10_000, [paid]), [{ kind: 'payout_unresolved', repair: 'settle_payout', providerRef: 'r' }]);
  t.match(at(10_000, [{ ...paid, status: 'rejected', reason: 'CLOSED' }]), [{ kind: 'payout_unresolved', repair: 'return_payout', repairData: { reason: 'CLOSED' } }]);
  t.match(at(10_000, []), [{ kind: 'payout_overdue', repair: null }]);
  t.same(at(60_000, []), []);
  t.match(matchPayouts({ withdrawals: new Map([[id, { ...w, status: 'failed' }]]), payments: [paid], flagged: () => false, referenceTime: NOW, graceMs: 0 }),
    [{ kind: 'payout_status_mismatch', expected: 'failed' }], 'paid by the provider, returned by the ledger');
});

t.test('property: repairs fold once; a second application changes nothing, and flagged duplicates are no longer differences', async (t) => {
  fc.assert(fc.property(fc.array(fc.record({ amount: fc.integer({ min: 1, max: 5_000 }), fault: fc.constantFrom('uncredited', 'paid', 'refused', 'duplicate') }), { minLength: 1, maxLength: 12 }), (cases) => {
    const l = new MemoryLedger();
    const fund: LedgerEvent = { type: 'BudgetFunded', data: { eventId: fundingEventIdFor('a', 'f'), occurredAt: 1, activityId: 'a', traceId: 't', fundingId: 'f', amount: 1_000_000, currency: 'CNY', fundedBy: 't' } };
    l.apply(fund);
    const withdrawals = new Map<string, WithdrawalRecord>();
    const payments: ProviderPayment[] = [];
    const diffs: Difference[] = [];
    cases.forEach((c, i) => {
      const user = `u${i}`;
      const tok = issued('a', user, `o${i}`, c.amount, 1);
      l.apply({ type: 'TokenIssued', data: tok });
      if (c.fault === 'uncredited') {
        diffs.push({ kind: 'token_never_credited', message: '', events: [], tokenId: tok.tokenId, activityId: 'a', userId: user, repair: 'credit_token', repairData: { amount: c.amount, currency: 'CNY' } });
        return;
      }
      l.apply({ type: 'TokenCredited', data: creditFor(tok, 2) });
      const id = withdrawalIdFor(user, 'k');
      l.apply({ type: 'WithdrawalRequested', data: { eventId: id, occurredAt: 3, activityId: '', traceId: 't', withdrawalId: id, userId: user, amount: c.amount, currency: 'CNY', requestedBy: user, clientAddress: '', requestId: '' } });
      if (c.fault === 'duplicate') {
        l.apply({ type: 'PayoutSettled', data: { eventId: settledEventIdFor(id), occurredAt: 4, activityId: '', traceId: 't', withdrawalId: id, userId: user, amount: c.amount, currency: 'CNY', providerRef: `p${i}` } });
        payments.push({ payoutId: id, providerRef: `p${i}`, userId: user, amount: c.amount, currency: 'CNY', status: 'succeeded', reason: null, createdAt: 0, seq: 2 * i });
        payments.push({ payoutId: id, providerRef: `p${i}-again`, userId: user, amount: c.amount, currency: 'CNY', status: 'succeeded', reason: null, createdAt: 0, seq: 2 * i + 1 });
      } else {
        payments.push({ payoutId: id, providerRef: `p${i}`, userId: user, amount: c.amount, currency: 'CNY', status: c.fault === 'paid' ? 'succeeded' : 'rejected', reason: 'NO', createdAt: 0, seq: 2 * i });
      }
      withdrawals.set(id, l.withdrawals.get(id)!);
    });
    diffs.push(...matchPayouts({ withdrawals, payments, flagged: () => false, referenceTime: NOW, graceMs: 0 }));
    if (diffs.some((d) => !d.repair)) return false;
    const fixes = compensationsFor(diffs, 10, 'run-1');
    if (fixes.length !== cases.length) return false;
    fixes.forEach((e) => l.apply(e));
    const after = JSON.stringify([...l.balances].sort());
    fixes.forEach((e) => l.apply(e)); // a second repair
    compensationsFor(diffs, 11, 'run-2').forEach((e) => l.apply(e)); // and a later run's
    if (JSON.stringify([...l.balances].sort()) !== after) return false;
    if (l.total() !== 0 || l.anomalies.length !== 0) return false;
    const paidOut = payments.filter((p) => p.status === 'succeeded').reduce((s, p) => s + p.amount, 0);
    if (l.balance(account.externalPayout()) !== paidOut) return false; // I6: the ledger equals the provider
    const now = matchPayouts({ withdrawals: new Map([...withdrawals.keys()].map((id) => [id, l.withdrawals.get(id)!])), payments, flagged: (w, ref) => l.applied.has(fixes.find((f) => f.type === 'PayoutDuplicateFlagged' && f.data.withdrawalId === w && f.data.providerRef === ref)?.data.eventId ?? ''), referenceTime: NOW, graceMs: 0 });
    return now.length === 0 && [...l.tokens.values()].every((tk) => tk.status === 'credited');
  }), { numRuns: 300 });
  t.pass('300 repair scenarios');
});

t.test('the CSV quotes what must be quoted and neutralises spreadsheet formulas', async (t) => {
  const csv = toCsv([{ kind: 'missing_payout', message: 'paid "twice", or\nnot', userId: '=HYPERLINK("x")', expected: -5, events: ['e1', 'e2'], repair: null }]);
  const [header, row] = csv.split('\n', 2);
  t.match(header, /^kind,activityId,userId,/);
  t.match(row, /^missing_payout,,"'=HYPERLINK\(""x""\)",/);
  t.match(csv, /,-5,/, 'a negative number stays a number');
  t.match(csv, /,e1;e2,/);
  t.match(csv, /"paid ""twice"", or\nnot",\n$/, 'the message quoted, then the (empty) packetId column');
});

t.test('property: differences come in payout id order, each payout\'s in the order found', async (t) => {
  fc.assert(fc.property(world, fc.array(fc.nat(), { minLength: 1, maxLength: 10 }), (w, picks) => {
    // Faults on several payouts: each deleted payment, and a duplicate and an amount change on one.
    const settled = w.payments.filter((p) => w.withdrawals.get(p.payoutId)!.status === 'settled');
    if (settled.length === 0) return true;
    const payments = w.payments.filter((p) => !picks.some((k) => settled[k % settled.length] === p));
    const twice = settled[picks[0]! % settled.length]!;
    payments.push({ ...twice, amount: twice.amount + 1, providerRef: 'psp-x', seq: 998 }, { ...twice, providerRef: 'psp-y', seq: 999 });
    const found = match({ withdrawals: w.withdrawals, payments });
    const ids = found.map((d) => d.payoutId!);
    return found.length > 0 && ids.every((id, i) => i === 0 || ids[i - 1]! <= id)
      && JSON.stringify(found.filter((d) => d.payoutId === twice.payoutId).map((d) => d.kind)) === JSON.stringify(['amount_mismatch', 'duplicate_payout']);
  }), { numRuns: 200 });
  t.pass('200 worlds');
});
