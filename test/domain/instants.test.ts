import t from 'tap';
import fc from 'fast-check';
import { readInstant } from '../../domain/instants.ts';
import { compileCampaign, liveChild, type CampaignConfig } from '../../domain/campaigns.ts';
import { validateCampaignConfig } from '../../schemas/campaign-config.ts';

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

/** An instant written in local time at an offset, in one of the spellings of that offset. */
function written(ms: number, offsetMin: number, spelling: 'colon' | 'compact' | 'hours'): string {
  const local = new Date(ms + offsetMin * 60_000);
  const sign = offsetMin < 0 ? '-' : '+';
  const abs = Math.abs(offsetMin);
  const offset = offsetMin === 0 && spelling === 'colon' ? 'Z'
    : spelling === 'colon' ? `${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`
    : spelling === 'compact' ? `${sign}${pad(Math.floor(abs / 60))}${pad(abs % 60)}`
    : `${sign}${pad(abs / 60)}`;
  return `${pad(local.getUTCFullYear(), 4)}-${pad(local.getUTCMonth() + 1)}-${pad(local.getUTCDate())}T${pad(local.getUTCHours())}:${pad(local.getUTCMinutes())}:${pad(local.getUTCSeconds())}.${pad(local.getUTCMilliseconds(), 3)}${offset}`;
}

t.test('an instant written at any offset, in any spelling of it, reads back as itself', async () => {
  const instant = fc.integer({ min: Date.parse('0001-01-02T00:00:00Z'), max: Date.UTC(9998, 11, 31) });
  fc.assert(fc.property(instant, fc.integer({ min: -23 * 60 - 59, max: 23 * 60 + 59 }), fc.constantFrom('colon' as const, 'compact' as const), (ms, offset, spelling) => {
    const r = readInstant(written(ms, offset, spelling));
    return r.ok && r.ms === ms;
  }));
  fc.assert(fc.property(instant, fc.integer({ min: -23, max: 23 }), (ms, hours) => {
    const r = readInstant(written(ms, hours * 60, 'hours'));
    return r.ok && r.ms === ms;
  }));
});

t.test('it agrees with Date.parse wherever Date.parse reads RFC 3339 at all', async () => {
  fc.assert(fc.property(fc.integer({ min: Date.UTC(1970, 0, 1), max: Date.UTC(9998, 11, 31) }), fc.integer({ min: -14 * 60, max: 14 * 60 }), (ms, offset) => {
    const text = written(ms, offset, 'colon');
    const r = readInstant(text);
    return r.ok && r.ms === Date.parse(text);
  }));
});

t.test('what is not an instant is refused with the reason', async (t) => {
  const refused: [string, RegExp][] = [
    ['2026-12-31T23:59:60Z', /leap second/],
    ['2027-02-29T00:00:00+08:00', /2027-02-29 is not a day/],
    ['2027-13-01T00:00:00Z', /is not a day/],
    ['2027-01-01T24:00:00Z', /24:00 is not a time of day/],
    ['2027-01-01T00:00:00+24:00', /is not an offset/],
    ['2027-01-01T00:00:00', /must be a date-time/],
    ['2027-01-01 00:00:00Z', /must be a date-time/],
    ['2027-01-01T00:00Z', /must be a date-time/],
    ['tomorrow', /must be a date-time/],
    ['', /must be a date-time/],
  ];
  for (const [text, problem] of refused) {
    const r = readInstant(text);
    t.notOk(r.ok, text);
    if (!r.ok) t.match(r.problem, problem, text);
  }
  t.same(readInstant('2028-02-29t12:00:00z'), { ok: true, ms: Date.UTC(2028, 1, 29, 12) }, 'lowercase t and z are RFC 3339 too');
});

t.test('validation and the draw path read a configuration\'s windows alike', async (t) => {
  const config = (startsAt: string, endsAt: string): CampaignConfig => ({
    activityId: 'spring', name: 'Spring', currency: 'CNY',
    children: [{
      childId: 'formal', stage: 'formal', startsAt, endsAt,
      scenes: [{ sceneId: 's', awardType: 'goods', statementText: 't', stockControl: false, reconcile: false, pool: { poolId: 'p', noWinWeight: 0, prizes: [{ prizeId: 'x', name: 'x', weight: 1, quota: 1, itemId: 'i' }] } }],
    }],
  });
  const beijing = config('2027-02-10T20:00:00+08', '2027-02-10T22:00:00+0800');
  const checked = validateCampaignConfig(beijing);
  t.ok(checked.ok, 'offsets in any spelling pass');
  const c = compileCampaign(beijing, 1);
  t.equal(liveChild(c, Date.UTC(2027, 1, 10, 11, 59, 59, 999)), null, 'not live before 20:00 Beijing');
  t.equal(liveChild(c, Date.UTC(2027, 1, 10, 12))?.childId, 'formal', 'live from 20:00 Beijing (12:00 UTC)');
  t.equal(liveChild(c, Date.UTC(2027, 1, 10, 14)), null, 'and until 22:00 Beijing, exclusive');

  const leap = validateCampaignConfig(config('2027-02-10T20:00:00+08:00', '2026-12-31T23:59:60Z'));
  t.same(leap.ok ? [] : leap.errors, [{ path: '/children/0/endsAt', message: 'must be a date-time without a leap second (:60); write :59 or the next minute' }]);
});
