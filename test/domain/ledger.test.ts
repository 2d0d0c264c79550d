import t from 'tap';
import fc from 'fast-check';
import { MemoryLedger, assertBalanced, checkSlices, effectsOf, negativeBalances, uncoveredToken } from '../../domain/ledger.ts';
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

t.test('a token moves money only within the budget slice it carries (I10)', async (t) => {
  const l = new MemoryLedger();
  l.apply(funded('a1', 'f1', 1000));
  const covered = issued('a1', 'u1', 'o-ok', 300, 1, { end: 300, funded: 1000 });
  const fx = l.apply({ type: 'TokenIssued', data: covered })!;
  t.same(fx.anomalies, []);
  t.equal(l.balance(account.user('u1', 'pending')), 300, 'a covered token applies');
  t.equal(l.tokens.get(covered.tokenId)?.budgetSliceEnd, 300, 'and its record keeps its slice');
  const atTheEdge = issued('a1', 'u1', 'o-edge', 700, 1, { end: 1000, funded: 1000 });
  t.same(effectsOf({ type: 'TokenIssued', data: atTheEdge }, l).anomalies, [], 'a slice ending exactly at the funding is covered');

  const refused = {
    'no slice': issued('a1', 'u2', 'o-none', 100, 1, null),
    'a slice without its funding': { ...issued('a1', 'u2', 'o-half', 100, 1, null), budgetSliceEnd: 100 },
    'a slice beyond the funding it records': issued('a1', 'u2', 'o-beyond', 100, 1, { end: 1100, funded: 1000 }),
    'a slice shorter than its amount (starting below zero)': issued('a1', 'u2', 'o-short', 100, 1, { end: 50, funded: 1000 }),
  };
  // As decoded from an event written before the fields existed: absent, not null.
  const { budgetSliceEnd: _e, budgetFunded: _f, ...legacy } = issued('a1', 'u2', 'o-legacy', 100, 1);
  for (const [what, tok] of [...Object.entries(refused), ['an event from before slices', legacy as typeof refused['no slice']] as const]) {
    const before = l.total();
    const r = l.apply({ type: 'TokenIssued', data: tok })!;
    t.same(r.postings, [], `${what}: moves nothing`);
    t.same(r.tokens, [], `${what}: no token`);
    t.match(r.anomalies, [{ kind: 'token_uncovered', tokenId: tok.tokenId, eventId: tok.eventId, activityId: 'a1', amount: 100, sliceEnd: tok.budgetSliceEnd ?? null, funded: tok.budgetFunded ?? null }], what);
    t.ok(uncoveredToken(tok), `${what}: uncoveredToken says why (${uncoveredToken(tok)})`);
    t.equal(l.total(), before);
    const credit = effectsOf({ type: 'TokenCredited', data: creditFor(tok, 2) }, l);
    t.same(credit.postings, [], `${what}: its credit moves nothing`);
    t.equal(credit.anomalies[0]?.kind, 'token_credit_without_issue');
  }
  t.equal(l.balance(account.user('u2', 'pending')), 0);
  t.equal(l.balance(account.activityBudget('a1')), 700, 'only the covered token left the budget');
  t.equal(uncoveredToken(covered), null);
});

t.test('checkSlices: disjoint exactly when, sorted apart, every start is at or after the previous end', async (t) => {
  t.same(checkSlices({ starts: [], ends: [] }), { overlaps: 0, highestEnd: 0, total: 0 });
  t.same(checkSlices({ starts: [10, 0, 30], ends: [30, 10, 35] }), { overlaps: 0, highestEnd: 35, total: 35 }, 'tiling, in any order');
  t.equal(checkSlices({ starts: [0, 5], ends: [10, 15] }).overlaps, 1);
  t.equal(checkSlices({ starts: [0, 0], ends: [10, 10] }).overlaps, 1, 'the same slice twice');
  t.equal(checkSlices({ starts: [0, 2, 20], ends: [10, 4, 30] }).overlaps, 1, 'a slice inside another');
  // Against the definition: no two slices share a point.
  const slice = fc.record({ start: fc.integer({ min: 0, max: 60 }), amount: fc.integer({ min: 1, max: 15 }) });
  fc.assert(fc.property(fc.array(slice, { maxLength: 12 }), (xs) => {
    const disjoint = xs.every((a, i) => xs.every((b, j) => i === j || a.start + a.amount <= b.start || b.start + b.amount <= a.start));
    const c = checkSlices({ starts: xs.map((x) => x.start), ends: xs.map((x) => x.start + x.amount) });
    return (c.overlaps === 0) === disjoint && c.total === xs.reduce((n, x) => n + x.amount, 0)
      && c.highestEnd === Math.max(0, ...xs.map((x) => x.start + x.amount));
  }), { numRuns: 1000 });
  t.pass('1000 random sets of slices');
});

// Fundings and grants of two activities in the order a journal accepted them; the grants'
// tokens carry the slices the journal gave them (some) or that a forger made up (the rest).
// Partitions as in Kafka: fundings on the budget topic by activity, tokens on the wallet topic
// by user.
const command = fc.oneof(
  fc.record({ fund: fc.constantFrom('x', 'y'), amount: fc.integer({ min: 1, max: 500 }) }),
  fc.record({
    grant: fc.constantFrom('x', 'y'), user: fc.integer({ min: 0, max: 5 }), amount: fc.integer({ min: 1, max: 200 }),
    slice: fc.oneof(
      fc.constant('journal' as const),
      fc.constant(null),
      fc.record({ end: fc.integer({ min: -50, max: 3_000 }), funded: fc.integer({ min: 0, max: 3_000 }) }),
    ),
  }),
);
const sliced = fc.record({
  commands: fc.array(command, { maxLength: 40 }),
  order: fc.array(fc.nat(), { minLength: 40, maxLength: 40 }),
  partitions: fc.integer({ min: 1, max: 4 }),
});
type Sliced = typeof sliced extends fc.Arbitrary<infer X> ? X : never;

function slicedEvents(c: Sliced): { events: LedgerEvent[]; fromJournal: Set<string>; fundedOnLog: Map<string, number>; partitionOf: (e: LedgerEvent) => string } {
  const fundedSoFar = new Map<string, number>();
  const reserved = new Map<string, number>();
  const fromJournal = new Set<string>();
  const events: LedgerEvent[] = [];
  c.commands.forEach((cmd, i) => {
    if ('fund' in cmd) {
      fundedSoFar.set(cmd.fund, (fundedSoFar.get(cmd.fund) ?? 0) + cmd.amount);
      events.push(funded(cmd.fund, `f${i}`, cmd.amount));
      return;
    }
    let slice: { end: number; funded: number } | null;
    if (cmd.slice === 'journal') {
      // What journal_accept does: reserve the next slice if the budget covers it, else refuse the grant.
      const r = reserved.get(cmd.grant) ?? 0;
      const f = fundedSoFar.get(cmd.grant) ?? 0;
      if (r + cmd.amount > f) return;
      reserved.set(cmd.grant, r + cmd.amount);
      slice = { end: r + cmd.amount, funded: f };
    } else slice = cmd.slice;
    const tok = issued(cmd.grant, `u${cmd.user}`, `o${i}`, cmd.amount, 1, slice);
    if (cmd.slice === 'journal') fromJournal.add(tok.tokenId);
    events.push({ type: 'TokenIssued', data: tok });
  });
  const partitionOf = (e: LedgerEvent) => (e.type === 'BudgetFunded' ? `budget/${e.data.activityId.charCodeAt(0) % c.partitions}`
    : `wallet/${Number((e.data as { userId: string }).userId.slice(1)) % c.partitions}`);
  return { events, fromJournal, fundedOnLog: fundedSoFar, partitionOf };
}

/** A permutation of the events by sort keys, keeping each partition's own order (as any consumer sees them). */
function interleave(events: LedgerEvent[], partitionOf: (e: LedgerEvent) => string, keys: number[]): LedgerEvent[] {
  const queues = new Map<string, LedgerEvent[]>();
  for (const e of events) {
    const q = queues.get(partitionOf(e)) ?? [];
    q.push(e);
    queues.set(partitionOf(e), q);
  }
  const names = [...queues.keys()];
  const out: LedgerEvent[] = [];
  for (let i = 0; out.length < events.length; i++) {
    const open = names.filter((n) => queues.get(n)!.length > 0);
    out.push(queues.get(open[(keys[i % keys.length]! + i) % open.length]!)!.shift()!);
  }
  return out;
}

const refusedTokens = (l: MemoryLedger) => l.anomalies.filter((a) => a.kind === 'token_uncovered').map((a) => (a as { tokenId: string }).tokenId).sort();

t.test('property: which tokens the fold refuses does not depend on how fundings and grants interleave (I10)', async (t) => {
  fc.assert(fc.property(sliced, (c) => {
    const { events, fromJournal, fundedOnLog, partitionOf } = slicedEvents(c);
    // The log's order, another interleaving (the projector's), and each partition folded apart (the parallel audit).
    const inOrder = new MemoryLedger();
    events.forEach((e) => inOrder.apply(e));
    const other = new MemoryLedger();
    interleave(events, partitionOf, c.order).forEach((e) => other.apply(e));
    const parts = new Map<string, MemoryLedger>();
    for (const e of events) {
      const part = parts.get(partitionOf(e)) ?? new MemoryLedger();
      part.apply(e);
      parts.set(partitionOf(e), part);
    }
    const refused = refusedTokens(inOrder);
    if (JSON.stringify(refusedTokens(other)) !== JSON.stringify(refused)) return false;
    if (JSON.stringify([...parts.values()].flatMap(refusedTokens).sort()) !== JSON.stringify(refused)) return false;
    if (JSON.stringify([...inOrder.tokens.keys()].sort()) !== JSON.stringify([...other.tokens.keys()].sort())) return false;
    // The journal's tokens are never refused, and their slices pass the log's check. Where that
    // check (disjoint, ending within the fundings on the log) passes, whatever made the tokens,
    // the accepted ones sum to at most what was funded.
    if (refused.some((id) => fromJournal.has(id))) return false;
    for (const activity of ['x', 'y']) {
      const accepted = [...inOrder.tokens.values()].filter((tk) => tk.activityId === activity);
      const check = checkSlices({ starts: accepted.map((tk) => tk.budgetSliceEnd! - tk.amount), ends: accepted.map((tk) => tk.budgetSliceEnd!) });
      const fundedTotal = fundedOnLog.get(activity) ?? 0;
      const passes = check.overlaps === 0 && check.highestEnd <= fundedTotal;
      if (passes && accepted.reduce((n, tk) => n + tk.amount, 0) > fundedTotal) return false;
      if (!passes && accepted.every((tk) => fromJournal.has(tk.tokenId))) return false;
    }
    return true;
  }), { numRuns: 500 });
  t.pass('500 random interleavings');
});
