import t from 'tap';
import fc from 'fast-check';
import { MemoryLedger, effectsOf, negativeBalances } from '../../domain/ledger.ts';
import { account } from '../../domain/accounts.ts';
import { checkWithdrawal, failedEventIdFor, inRollout, payoutBackoffMs, rolloutBucket, settledEventIdFor, withdrawalIdFor } from '../../domain/withdrawals.ts';
import { fundingEventIdFor } from '../../domain/grants.ts';
import type { LedgerEvent } from '../../domain/events.ts';
import { issued, creditFor } from '../helpers/events.ts';

const U = 'u1';
const requested = (key: string, amount: number): LedgerEvent => ({
  type: 'WithdrawalRequested',
  data: { eventId: withdrawalIdFor(U, key), occurredAt: 10, activityId: '', traceId: 't', withdrawalId: withdrawalIdFor(U, key), userId: U, amount, currency: 'CNY', requestedBy: U, clientAddress: '-', requestId: key },
});
const settled = (key: string, amount: number): LedgerEvent => ({
  type: 'PayoutSettled',
  data: { eventId: settledEventIdFor(withdrawalIdFor(U, key)), occurredAt: 20, activityId: '', traceId: 't', withdrawalId: withdrawalIdFor(U, key), userId: U, amount, currency: 'CNY', providerRef: 'psp' },
});
const failed = (key: string, amount: number): LedgerEvent => ({
  type: 'PayoutFailed',
  data: { eventId: failedEventIdFor(withdrawalIdFor(U, key)), occurredAt: 20, activityId: '', traceId: 't', withdrawalId: withdrawalIdFor(U, key), userId: U, amount, currency: 'CNY', reason: 'ACCOUNT_BLOCKED' },
});

function walletWith(credited: number): MemoryLedger {
  const l = new MemoryLedger();
  l.apply({ type: 'BudgetFunded', data: { eventId: fundingEventIdFor('a', 'f'), occurredAt: 1, activityId: 'a', traceId: 't', fundingId: 'f', amount: 1_000_000, currency: 'CNY', fundedBy: 't' } });
  const tok = issued('a', U, 'o1', credited);
  l.apply({ type: 'TokenIssued', data: tok });
  l.apply({ type: 'TokenCredited', data: creditFor(tok, 2) });
  return l;
}

t.test('checkWithdrawal: amount, currency, cap, funds', async (t) => {
  const terms = { currency: 'CNY' as const, maxSingleWithdrawal: 1000 };
  t.equal(checkWithdrawal(500, 'CNY', 500, terms), null);
  t.equal(checkWithdrawal(0, 'CNY', 500, terms)?.code, 'AMOUNT_NOT_POSITIVE_INTEGER');
  t.equal(checkWithdrawal(1.5, 'CNY', 500, terms)?.code, 'AMOUNT_NOT_POSITIVE_INTEGER');
  t.equal(checkWithdrawal(5, 'USD', 500, terms)?.code, 'CURRENCY_MISMATCH');
  t.equal(checkWithdrawal(1001, 'CNY', 5000, terms)?.code, 'AMOUNT_OVER_CAP');
  t.equal(checkWithdrawal(501, 'CNY', 500, terms)?.code, 'INSUFFICIENT_FUNDS');
  t.equal(checkWithdrawal(501, 'CNY', 500, { currency: 'CNY' })?.code, 'INSUFFICIENT_FUNDS', 'the fold checks funds without a cap');
});

t.test('withdraw, settle and fail move money between the right accounts', async (t) => {
  const l = walletWith(1000);
  l.apply(requested('k1', 600));
  t.same([l.balance(account.user(U, 'available')), l.balance(account.user(U, 'withdrawing'))], [400, 600]);
  l.apply(settled('k1', 600));
  t.same([l.balance(account.user(U, 'withdrawing')), l.balance(account.externalPayout())], [0, 600]);
  l.apply(requested('k2', 400));
  l.apply(failed('k2', 400));
  t.same([l.balance(account.user(U, 'available')), l.balance(account.user(U, 'withdrawing'))], [400, 0], 'a failed payout returns the money');
  t.equal(l.withdrawal(withdrawalIdFor(U, 'k2'))?.status, 'failed');
  t.equal(l.total(), 0);
  t.same(l.anomalies, []);
});

t.test('the fold refuses an overdraft, a second resolution and a wrong amount', async (t) => {
  const l = walletWith(100);
  const fx = effectsOf(requested('big', 101), l);
  t.same(fx.postings, [], 'an uncovered withdrawal moves nothing');
  t.equal(fx.withdrawals[0]?.status, 'rejected');
  t.equal(fx.anomalies[0]?.kind, 'withdrawal_overdraft');
  l.apply(requested('big', 101));
  t.same(effectsOf(settled('big', 101), l).anomalies.map((a) => a.kind), ['payout_resolved_twice'], 'a rejected withdrawal is never paid');

  l.apply(requested('k', 100));
  t.same(effectsOf(settled('k', 99), l).anomalies.map((a) => a.kind), ['payout_amount_mismatch']);
  l.apply(settled('k', 100));
  t.same(effectsOf(failed('k', 100), l).anomalies.map((a) => a.kind), ['payout_resolved_twice'], 'a settled payout cannot also fail');
  t.same(effectsOf({ ...settled('k', 100), data: { ...settled('k', 100).data, eventId: 'other' } } as LedgerEvent, l).postings, [], 'nor settle twice');
  t.same(effectsOf(settled('never', 5), l).anomalies.map((a) => a.kind), ['payout_without_withdrawal']);
});

// A wallet's life: withdrawals (some decided by the API's rule, some forced past it, as a
// buggy or malicious producer would), settlements and failures in any order, redeliveries.
const life = fc.record({
  credited: fc.integer({ min: 1, max: 10_000 }),
  steps: fc.array(fc.oneof(
    fc.record({ op: fc.constant('withdraw' as const), amount: fc.integer({ min: 1, max: 5_000 }), bypassApi: fc.boolean() }),
    fc.record({ op: fc.constantFrom('settle' as const, 'fail' as const), which: fc.nat() }),
    fc.record({ op: fc.constant('redeliver' as const), which: fc.nat() }),
  ), { maxLength: 50 }),
});

t.test('property: withdrawals never overdraw, every payout resolves once, and the books balance', async (t) => {
  fc.assert(fc.property(life, ({ credited, steps }) => {
    const l = walletWith(credited);
    const sent: LedgerEvent[] = [];
    const keys: { key: string; amount: number }[] = [];
    const send = (e: LedgerEvent) => { sent.push(e); l.apply(e); };
    for (const [i, s] of steps.entries()) {
      if (s.op === 'withdraw') {
        if (!s.bypassApi && checkWithdrawal(s.amount, 'CNY', l.balance(account.user(U, 'available')), { currency: 'CNY' })) continue;
        keys.push({ key: `k${i}`, amount: s.amount });
        send(requested(`k${i}`, s.amount));
      } else if (s.op === 'redeliver') {
        if (sent.length) send(sent[s.which % sent.length]!);
      } else if (keys.length) {
        const k = keys[s.which % keys.length]!;
        send(s.op === 'settle' ? settled(k.key, k.amount) : failed(k.key, k.amount));
      }
    }
    if (l.total() !== 0) return false;
    if (negativeBalances([...l.balances].map(([a, b]) => [a, b.currency, b.balance])).length) return false;
    const all = [...l.withdrawals.values()];
    const paid = all.filter((w) => w.status === 'settled').reduce((s, w) => s + w.amount, 0);
    const open = all.filter((w) => w.status === 'withdrawing').reduce((s, w) => s + w.amount, 0);
    if (l.balance(account.externalPayout()) !== paid) return false; // one posting per settled payout
    if (l.balance(account.user(U, 'withdrawing')) !== open) return false;
    return l.balance(account.user(U, 'available')) + open + paid === credited; // nothing created or lost
  }), { numRuns: 400 });
  t.pass('400 random wallet lives');
});

t.test('gray release is stable per user and only grows with the share', async (t) => {
  fc.assert(fc.property(fc.string({ minLength: 1, maxLength: 20 }), fc.integer({ min: 0, max: 10_000 }), fc.integer({ min: 0, max: 10_000 }), (user, a, b) => {
    const [lo, hi] = a <= b ? [a, b] : [b, a];
    if (rolloutBucket(user) !== rolloutBucket(user)) return false;
    return !inRollout(user, lo) || inRollout(user, hi); // in at a lower share ⇒ in at a higher one
  }));
  t.notOk(inRollout('anyone', 0), 'a share of 0 lets nobody in');
  t.ok(inRollout('anyone', 10_000), 'a share of 10,000 lets everybody in');
  const share = Array.from({ length: 10_000 }, (_, i) => inRollout(`user-${i}`, 2_500)).filter(Boolean).length;
  t.ok(share > 2_300 && share < 2_700, `about a quarter of users at 2,500 bp (${share} of 10,000)`);
});

t.test('payout backoff doubles and is capped', async (t) => {
  t.same([1, 2, 3, 4, 10, 100].map((a) => payoutBackoffMs(a, 250, 15_000)), [250, 500, 1000, 2000, 15_000, 15_000]);
});

t.test('a withdrawal whose event id is not its withdrawal id moves nothing (I5)', async (t) => {
  const l = walletWith(1000);
  const w = requested('k1', 600);
  l.apply(w);
  l.apply({ ...w, data: { ...w.data, eventId: '00000000-0000-8000-8000-000000000009' } } as LedgerEvent);
  t.same([l.balance(account.user(U, 'available')), l.balance(account.user(U, 'withdrawing'))], [400, 600], 'withdrawn once');
  t.same(l.anomalies.map((a) => a.kind), ['event_id_not_derived']);
});
