import t from 'tap';
import fc from 'fast-check';
import { MemoryLedger, assertBalanced, effectsOf, negativeBalances } from '../../domain/ledger.ts';
import { account } from '../../domain/accounts.ts';
import { fundingEventIdFor } from '../../domain/grants.ts';
import type { LedgerEvent } from '../../domain/events.ts';
import { issued, creditFor } from '../helpers/events.ts';

const funded = (activityId: string, fundingId: string, amount: number): LedgerEvent => ({
  type: 'BudgetFunded',
  data: { eventId: fundingEventIdFor(activityId, fundingId), occurredAt: 1, activityId, traceId: 't', fundingId, amount, currency: 'CNY', fundedBy: 'test' },
});

t.test('each event type moves money between the right accounts', async (t) => {
  const l = new MemoryLedger();
  l.apply(funded('a1', 'f1', 1000));
  t.equal(l.balance(account.companyCost()), -1000);
  t.equal(l.balance(account.activityBudget('a1')), 1000);
  const tok = issued('a1', 'u1', 'o1', 88);
  l.apply({ type: 'TokenIssued', data: tok });
  t.equal(l.balance(account.activityBudget('a1')), 912);
  t.equal(l.balance(account.user('u1', 'pending')), 88);
  l.apply({ type: 'TokenCredited', data: creditFor(tok, 2) });
  t.equal(l.balance(account.user('u1', 'pending')), 0);
  t.equal(l.balance(account.user('u1', 'available')), 88);
  t.equal(l.tokens.get(tok.tokenId)?.status, 'credited');
  t.equal(l.total(), 0);
});

t.test('a credit for an unknown token, a second credit and a wrong amount move nothing', async (t) => {
  const l = new MemoryLedger();
  const tok = issued('a1', 'u1', 'o1', 50);
  const fx = effectsOf({ type: 'TokenCredited', data: creditFor(tok, 1) }, l);
  t.same(fx.postings, []);
  t.equal(fx.anomalies[0]?.kind, 'token_credit_without_issue');
  l.apply({ type: 'TokenIssued', data: tok });
  l.apply({ type: 'TokenCredited', data: creditFor(tok, 2) });
  const again = effectsOf({ type: 'TokenCredited', data: { ...creditFor(tok, 3), eventId: 'another-id' } }, l);
  t.same(again.postings, []);
  t.equal(again.anomalies[0]?.kind, 'token_credited_twice');
  const l2 = new MemoryLedger();
  l2.apply({ type: 'TokenIssued', data: tok });
  const wrong = effectsOf({ type: 'TokenCredited', data: { ...creditFor(tok, 3), amount: 51 } }, l2);
  t.same(wrong.postings, []);
  t.equal(wrong.anomalies[0]?.kind, 'token_credit_mismatch');
});

t.test('assertBalanced refuses unbalanced or fractional postings', async (t) => {
  t.throws(() => assertBalanced([{ account: 'a', currency: 'CNY', amount: 1 }]), /do not balance/);
  t.throws(() => assertBalanced([{ account: 'a', currency: 'CNY', amount: 0.5 }, { account: 'b', currency: 'CNY', amount: -0.5 }]), /not an integer/);
  t.doesNotThrow(() => assertBalanced([]));
  // Zero overall is not enough: every currency balances on its own.
  t.throws(() => assertBalanced([{ account: 'a', currency: 'CNY', amount: 5 }, { account: 'b', currency: 'USD' as never, amount: -5 }]), /do not balance in CNY/);
  t.doesNotThrow(() => assertBalanced([
    { account: 'a', currency: 'CNY', amount: 5 }, { account: 'b', currency: 'USD' as never, amount: -3 }, { account: 'c', currency: 'CNY', amount: -5 }, { account: 'd', currency: 'USD' as never, amount: 3 },
  ]));
});

// A random campaign: fundings, grants that respect the remaining budget (the API's rule),
// credits of some issued tokens, and redeliveries of anything already sent.
const campaign = fc.record({
  fundings: fc.array(fc.integer({ min: 1, max: 10_000 }), { minLength: 1, maxLength: 4 }),
  grants: fc.array(fc.record({ user: fc.integer({ min: 0, max: 9 }), amount: fc.integer({ min: 1, max: 3_000 }) }), { maxLength: 60 }),
  creditMask: fc.array(fc.boolean(), { minLength: 60, maxLength: 60 }),
  redeliver: fc.array(fc.nat(), { maxLength: 40 }),
});

type Campaign = typeof campaign extends fc.Arbitrary<infer X> ? X : never;

function eventsOf(c: Campaign): LedgerEvent[] {
  const out: LedgerEvent[] = c.fundings.map((amount, i) => funded('act', `f${i}`, amount));
  let remaining = c.fundings.reduce((s, x) => s + x, 0);
  c.grants.forEach((g, i) => {
    if (g.amount > remaining) return; // refused by the budget counter
    remaining -= g.amount;
    const tok = issued('act', `u${g.user}`, `o${i}`, g.amount);
    out.push({ type: 'TokenIssued', data: tok });
    if (c.creditMask[i]) out.push({ type: 'TokenCredited', data: creditFor(tok, 5) });
  });
  for (const r of c.redeliver) if (out.length) out.push(out[r % out.length]!);
  return out;
}

t.test('property: invariants hold for any campaign, with any redeliveries', async (t) => {
  fc.assert(fc.property(campaign, (c) => {
    const events = eventsOf(c);
    const l = new MemoryLedger();
    for (const e of events) {
      assertBalanced(effectsOf(e, l).postings); // I1 for every event
      l.apply(e);
    }
    if (l.total() !== 0) return false; // sum zero
    if (negativeBalances([...l.balances].map(([a, b]) => [a, b.currency, b.balance])).length) return false; // I2
    const credited = [...l.tokens.values()].filter((tk) => tk.status === 'credited');
    const available = [...l.balances].filter(([a]) => a.endsWith(':available')).reduce((s, [, b]) => s + b.balance, 0);
    if (available !== credited.reduce((s, tk) => s + tk.amount, 0)) return false; // I3: each credited once
    return l.anomalies.length === 0;
  }), { numRuns: 300 });
  t.pass('300 random campaigns');
});

t.test('property: folding the log twice over gives the same ledger as once (idempotent replay)', async (t) => {
  fc.assert(fc.property(campaign, (c) => {
    const events = eventsOf(c);
    const once = new MemoryLedger();
    events.forEach((e) => once.apply(e));
    const twice = new MemoryLedger();
    [...events, ...events].forEach((e) => twice.apply(e));
    return JSON.stringify([...once.balances].sort()) === JSON.stringify([...twice.balances].sort());
  }), { numRuns: 200 });
  t.pass('200 random campaigns');
});

t.test('a second copy of a funding, grant or withdrawal under another event id moves nothing (I5)', async (t) => {
  const l = new MemoryLedger();
  const fund = funded('a1', 'f1', 1000);
  l.apply(fund);
  l.apply({ ...fund, data: { ...fund.data, eventId: '00000000-0000-8000-8000-000000000001' } } as LedgerEvent);
  t.equal(l.balance(account.activityBudget('a1')), 1000, 'funded once');
  const tok = issued('a1', 'u1', 'o1', 88);
  l.apply({ type: 'TokenIssued', data: tok });
  l.apply({ type: 'TokenIssued', data: { ...tok, eventId: '00000000-0000-8000-8000-000000000002' } });
  l.apply({ type: 'TokenIssued', data: { ...tok, eventId: '00000000-0000-8000-8000-000000000003', tokenId: '00000000-0000-8000-8000-000000000003' } });
  t.equal(l.balance(account.user('u1', 'pending')), 88, 'granted once');
  t.same(l.anomalies.map((a) => a.kind), ['event_id_not_derived', 'event_id_not_derived', 'event_id_not_derived']);
  t.equal(l.total(), 0);
});

t.test('a flagged duplicate payout books the extra payment from payout-recovery to external, once, and only for a settled withdrawal (I6)', async (t) => {
  const { duplicateFlagEventIdFor, settledEventIdFor, withdrawalIdFor } = await import('../../domain/withdrawals.ts');
  const l = new MemoryLedger();
  l.apply(funded('a1', 'f1', 1000));
  const tok = issued('a1', 'u1', 'o1', 300);
  l.apply({ type: 'TokenIssued', data: tok });
  l.apply({ type: 'TokenCredited', data: creditFor(tok, 2) });
  const id = withdrawalIdFor('u1', 'k1');
  l.apply({ type: 'WithdrawalRequested', data: { eventId: id, occurredAt: 3, activityId: '', traceId: 't', withdrawalId: id, userId: 'u1', amount: 300, currency: 'CNY', requestedBy: 'u1', clientAddress: '', requestId: '' } });
  const flag = (ref: string, eventId = duplicateFlagEventIdFor(id, ref)): LedgerEvent => ({
    type: 'PayoutDuplicateFlagged', data: { eventId, occurredAt: 5, activityId: '', traceId: 't', withdrawalId: id, userId: 'u1', amount: 300, currency: 'CNY', providerRef: ref, flaggedBy: 'run' },
  });
  l.apply(flag('psp-2'));
  t.equal(l.balance(account.externalPayout()), 0, 'not while the withdrawal is in flight');
  l.apply({ type: 'PayoutSettled', data: { eventId: settledEventIdFor(id), occurredAt: 4, activityId: '', traceId: 't', withdrawalId: id, userId: 'u1', amount: 300, currency: 'CNY', providerRef: 'psp-1' } });
  l.apply(flag('psp-1', '00000000-0000-8000-8000-0000000000f1'));
  t.equal(l.anomalies.at(-1)?.kind, 'event_id_not_derived');
  const onSettlement = effectsOf(flag('psp-1'), l);
  t.same(onSettlement.postings, [], 'the payment the withdrawal settled with is not extra');
  t.equal(onSettlement.anomalies[0]?.kind, 'duplicate_flag_refused');
  const retry = flag('psp-3');
  l.apply(retry);
  l.apply(retry);
  t.equal(l.balance(account.externalPayout()), 600, 'the settlement and one flagged extra payment');
  t.equal(l.balance(account.payoutRecovery()), -300);
  t.same(negativeBalances([...l.balances].map(([a, b]) => [a, b.currency, b.balance])), [], 'payout-recovery may go negative');
  t.equal(l.total(), 0);
});
