import t from 'tap';
import fc from 'fast-check';
import { drawOrderNo } from '../../domain/campaigns.ts';
import { checkGrant, grantFingerprint, tokenIdFor } from '../../domain/grants.ts';
import { deterministicId } from '../../domain/ids.ts';
import { isActivityBudget, parseAccount, account } from '../../domain/accounts.ts';

const terms = { activityId: 'a1', currency: 'CNY' as const, maxSingleGrant: 1000 };
const cmd = { activityId: 'a1', sceneId: 's', orderNo: 'o', userId: 'u', amount: 10, currency: 'CNY' };

t.test('grant checks', async (t) => {
  t.equal(checkGrant(cmd, terms), null);
  t.equal(checkGrant({ ...cmd, amount: 1000 }, terms), null, 'the cap itself is allowed');
  t.equal(checkGrant({ ...cmd, amount: 1001 }, terms)?.code, 'AMOUNT_OVER_CAP');
  t.equal(checkGrant({ ...cmd, amount: 0 }, terms)?.code, 'AMOUNT_NOT_POSITIVE_INTEGER');
  t.equal(checkGrant({ ...cmd, amount: 2.5 }, terms)?.code, 'AMOUNT_NOT_POSITIVE_INTEGER');
  t.equal(checkGrant({ ...cmd, currency: 'USD' }, terms)?.code, 'CURRENCY_MISMATCH');
  t.equal(checkGrant({ ...cmd, orderNo: drawOrderNo('d1') }, terms)?.code, 'ORDER_NO_RESERVED', 'a draw\'s order number cannot be granted directly');
  t.equal(checkGrant({ ...cmd, orderNo: 'drawn-1' }, terms), null);
  t.equal(checkGrant(cmd, { ...terms, campaignId: 'spring' })?.code, 'ACTIVITY_RESERVED', 'a campaign child\'s budget is spent only by its draws');
  t.equal(checkGrant(cmd, { ...terms, campaignId: null }), null, 'a plain activity');
});

t.test('ids are deterministic and keyed by every part', async (t) => {
  t.equal(tokenIdFor('a1', 'o1'), tokenIdFor('a1', 'o1'));
  t.not(tokenIdFor('a1', 'o1'), tokenIdFor('a2', 'o1'));
  t.not(deterministicId('k', 'a_b', 'c'), deterministicId('k', 'a', 'b_c'), 'parts cannot slide into each other');
  t.match(tokenIdFor('a', 'b'), /^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  fc.assert(fc.property(fc.tuple(fc.string(), fc.string()), fc.tuple(fc.string(), fc.string()), (x, y) =>
    (x[0] === y[0] && x[1] === y[1]) === (tokenIdFor(...x) === tokenIdFor(...y))));
});

t.test('a grant fingerprint changes with every field', async (t) => {
  const base = grantFingerprint(cmd);
  for (const [k, v] of Object.entries({ activityId: 'a2', sceneId: 's2', orderNo: 'o2', userId: 'u2', amount: 11, currency: 'USD' })) {
    t.not(grantFingerprint({ ...cmd, [k]: v }), base, k);
  }
});

t.test('account ids parse back', async (t) => {
  t.same(parseAccount(account.user('u:1', 'pending')), { kind: 'user', ownerId: 'u:1', bucket: 'pending' });
  t.same(parseAccount(account.activityBudget('a1')), { kind: 'activity', ownerId: 'a1', bucket: 'budget' });
  t.same(parseAccount(account.companyCost()), { kind: 'company', ownerId: null, bucket: 'cost' });
  t.throws(() => parseAccount('nonsense'));
});

t.test('an activity budget is recognised without parsing, whatever the owner ids hold', async (t) => {
  t.ok(isActivityBudget(account.activityBudget('a1')));
  t.notOk(isActivityBudget(account.user('activity:a1:budget', 'pending')), 'a user named like a budget');
  t.notOk(isActivityBudget(account.packetEscrow('activity:p')));
  fc.assert(fc.property(fc.string(), fc.constantFrom('pending', 'available', 'withdrawing') as fc.Arbitrary<'pending'>, (id, bucket) => {
    for (const acct of [account.activityBudget(id), account.user(id, bucket), account.packetEscrow(id), account.companyCost(), account.payoutRecovery(), account.externalPayout()]) {
      if (isActivityBudget(acct) !== (parseAccount(acct).kind === 'activity')) return false;
    }
    return true;
  }));
});
