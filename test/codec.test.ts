import { tokenIdFor } from '../domain/grants.ts';
import { drawEventIdFor, goodsGrantIdFor } from '../domain/campaigns.ts';
import t from 'tap';
import { EventCodec, subjectFor, schemaOf } from '../schemas/codec.ts';
import { AUDIT_TRAIL_FIELDS, EVENT_TYPES } from '../domain/events.ts';
import { MemoryLedger } from '../domain/ledger.ts';
import { replayCodec } from '../reconcile/replay.ts';
import { loadConfig } from '../infra/config.ts';
import { testNamespace } from './helpers/ledger.ts';
import { issued, creditFor } from './helpers/events.ts';
import { fundingEventIdFor } from '../domain/grants.ts';
import { claimEventIdFor, packetIdFor, refundEventIdFor, shareCreditEventIdFor } from '../domain/packets.ts';
import { decideGrant, applyAll, decideClaim, decideReissue, decideFreeze, decideUnfreeze, decideRedeem, type CouponEvent } from '../domain/coupons.ts';
import { attemptFailedEventIdFor, duplicateFlagEventIdFor, failedEventIdFor, settledEventIdFor } from '../domain/withdrawals.ts';

const cfg = loadConfig();
const topic = `${testNamespace()}.wallet.v1`;
const tok = issued('a1', 'u1', 'o1', 88, 1_790_000_000_123);
const W = '0d9a1c2e-3b4f-8a5d-9e6f-7a8b9c0d1e2f';
const P = packetIdFor('u1', 'k1');
const cctx = { now: 1_790_000_000_300, activityId: 'spring', traceId: 't' };
const packGranted = decideGrant({
  activityId: 'spring', orderNo: 'o-pack', userId: 'u2', packId: 'spring-pack', platform: 'android', grantedBy: 'shake-svc', clientAddress: '10.0.0.1', requestId: 'r5',
  coupons: [{ templateId: 'a-5', slot: 'five', platform: 'android', faceValue: 500, currency: 'CNY', expiresAt: 1_792_000_000_000 }],
}, cctx);
const couponEvents: CouponEvent[] = [{ type: 'GiftPackGranted', data: packGranted }];
const step = (events: CouponEvent[]) => { couponEvents.push(...events); return events[0]!.data; };
const pack = () => applyAll(undefined, couponEvents)!;
const claimed = step(decideClaim(pack(), cctx).events);
const reissued = step([decideReissue(pack(), 'ios', [{ templateId: 'i-5', slot: 'five', platform: 'ios', faceValue: 500, currency: 'CNY', expiresAt: 1_792_000_000_000 }], cctx)]);
const iosCoupon = pack().coupons[1]!.couponId;
const frozen = step(decideFreeze(pack(), { couponId: iosCoupon, paymentId: 'pay-1', platform: 'ios', holdMs: 60_000 }, cctx).events);
const unfrozen = step(decideUnfreeze(pack(), { couponId: iosCoupon, paymentId: 'pay-1' }, cctx).events);
step(decideFreeze(pack(), { couponId: iosCoupon, paymentId: 'pay-2', platform: 'ios', holdMs: 60_000 }, cctx).events);
const redeemed = step(decideRedeem(pack(), { couponId: iosCoupon, paymentId: 'pay-2' }, cctx).events);
const samples = {
  BudgetFunded: { eventId: fundingEventIdFor('a1', 'f1'), occurredAt: 1_790_000_000_000, activityId: 'a1', traceId: 't', fundingId: 'f1', amount: 1_000_000, currency: 'CNY', fundedBy: 'ops' },
  TokenIssued: tok,
  TokenCredited: creditFor(tok, 1_790_000_000_999),
  WithdrawalRequested: { eventId: W, occurredAt: 1_790_000_001_000, activityId: '', traceId: 't', withdrawalId: W, userId: 'u1', amount: 500, currency: 'CNY', requestedBy: 'u1', clientAddress: '10.0.0.1', requestId: 'r1' },
  PayoutSettled: { eventId: settledEventIdFor(W), occurredAt: 1_790_000_002_000, activityId: '', traceId: 't', withdrawalId: W, userId: 'u1', amount: 500, currency: 'CNY', providerRef: 'psp-1' },
  PayoutFailed: { eventId: failedEventIdFor(W), occurredAt: 1_790_000_002_000, activityId: '', traceId: 't', withdrawalId: W, userId: 'u1', amount: 500, currency: 'CNY', reason: 'ACCOUNT_BLOCKED' },
  PayoutAttemptFailed: { eventId: attemptFailedEventIdFor(W, 2), occurredAt: 1_790_000_002_000, activityId: '', traceId: 't', withdrawalId: W, userId: 'u1', amount: 500, currency: 'CNY', attempt: 2, retryAt: 1_790_000_004_000, reason: 'HTTP 503' },
  PayoutDuplicateFlagged: { eventId: duplicateFlagEventIdFor(W, 'psp-2'), occurredAt: 1_790_000_003_000, activityId: '', traceId: 't', withdrawalId: W, userId: 'u1', amount: 500, currency: 'CNY', providerRef: 'psp-2', flaggedBy: 'reconcile-1' },
  PacketCreated: { eventId: P, occurredAt: 1_790_000_004_000, activityId: '', traceId: 't', packetId: P, senderId: 'u1', amount: 1000, currency: 'CNY', count: 3, shares: [412, 77, 511], greeting: '恭喜发财', expiresAt: 1_790_086_404_000, requestedBy: 'u1', clientAddress: '10.0.0.1', requestId: 'r2' },
  PacketClaimed: { eventId: claimEventIdFor(P, 'u2'), occurredAt: 1_790_000_005_000, activityId: '', traceId: 't', packetId: P, senderId: 'u1', userId: 'u2', seq: 0, amount: 412, currency: 'CNY' },
  PacketShareCredited: { eventId: shareCreditEventIdFor(P, 'u2'), occurredAt: 1_790_000_006_000, activityId: '', traceId: 't', packetId: P, userId: 'u2', amount: 412, currency: 'CNY' },
  PacketRefunded: { eventId: refundEventIdFor(P), occurredAt: 1_790_086_405_000, activityId: '', traceId: 't', packetId: P, senderId: 'u1', amount: 588, currency: 'CNY' },
  LotteryDrawn: {
    eventId: drawEventIdFor('spring', 'd1'), occurredAt: 1_790_000_000_100, activityId: 'spring', traceId: 't', drawId: 'd1', userId: 'u2', childId: 'formal',
    sceneId: 'shake', poolId: 'main', configVersion: 3, outcome: 'won', reason: '', prizeId: 'cash-88', awardType: 'cash', prizeAmount: 88, currency: 'CNY',
    itemId: '', quantity: 0, fulfilmentId: tokenIdFor('spring:formal', 'draw.d1'), requestedBy: 'shake-svc', clientAddress: '10.0.0.1', requestId: 'r3',
  },
  GoodsGranted: {
    eventId: goodsGrantIdFor('spring:formal', 'draw.d2'), occurredAt: 1_790_000_000_200, activityId: 'spring:formal', traceId: 't', grantId: goodsGrantIdFor('spring:formal', 'draw.d2'),
    orderNo: 'draw.d2', userId: 'u2', sceneId: 'frames', itemId: 'frame-gold', quantity: 1, grantedBy: 'shake-svc', clientAddress: '10.0.0.1', requestId: 'r4',
  },
  GiftPackGranted: packGranted,
  GiftPackClaimed: claimed,
  CouponsReissued: reissued,
  CouponFrozen: frozen,
  CouponUnfrozen: unfrozen,
  CouponRedeemed: redeemed,
} as const;

t.test('every event round-trips through the registry in the Confluent wire format', async (t) => {
  const writer = new EventCodec(cfg.schemaRegistryUrl);
  const reader = new EventCodec(cfg.schemaRegistryUrl); // a fresh reader knows nothing but the registry
  for (const type of EVENT_TYPES) {
    const buf = await writer.encode(topic, type, samples[type] as never);
    t.equal(buf[0], 0, `${type}: magic byte`);
    const id = buf.readUInt32BE(1);
    t.ok(id > 0, `${type}: schema id ${id}`);
    const back = await reader.decode(buf);
    t.equal(back.type, type);
    t.same({ ...back.data }, samples[type], `${type}: same data back`);
    const res = await fetch(`${cfg.schemaRegistryUrl}/config/${encodeURIComponent(subjectFor(topic, type))}`);
    t.same(await res.json(), { compatibilityLevel: 'BACKWARD' }, `${type}: subject is BACKWARD compatible`);
  }
});

t.test('a replay codec leaves out the audit trail, and the ledger folds its events exactly as the full ones', async (t) => {
  const writer = new EventCodec(cfg.schemaRegistryUrl);
  const full = new EventCodec(cfg.schemaRegistryUrl);
  const replay = replayCodec(cfg.schemaRegistryUrl);
  const whole = new MemoryLedger();
  const trimmed = new MemoryLedger();
  let skipped = 0;
  for (const type of EVENT_TYPES) {
    const buf = await writer.encode(topic, type, samples[type] as never);
    const a = await full.decode(buf);
    const b = await replay.decode(buf);
    const data = b.data as unknown as Record<string, unknown>;
    for (const f of AUDIT_TRAIL_FIELDS) {
      if (f in samples[type]) skipped++;
      t.equal(data[f], undefined, `${type}: no ${f}`);
    }
    const kept = Object.fromEntries(Object.entries(samples[type]).filter(([f]) => !(AUDIT_TRAIL_FIELDS as readonly string[]).includes(f)));
    t.same({ ...data }, kept, `${type}: every other field`);
    // The same effects, anomalies included, from the same state: no rule reads the trail.
    t.same(trimmed.apply(b), whole.apply(a), `${type}: same effects`);
  }
  t.ok(skipped >= 15, `${skipped} trail fields were left out`);
  t.same([...trimmed.balances], [...whole.balances], 'same balances');
  t.same([trimmed.tokens, trimmed.withdrawals, trimmed.packets, trimmed.packs], [whole.tokens, whole.withdrawals, whole.packets, whole.packs], 'same records');
});

t.test('schemas document themselves and match the TypeScript events', async (t) => {
  for (const type of EVENT_TYPES) {
    const s = schemaOf(type);
    t.equal(s.namespace, 'io.hongbao.ledger');
    t.ok(s.doc.length > 10, `${type} has a doc`);
    t.ok(s.fields.every((f) => (f.doc ?? '').length > 3), `${type}: every field documented`);
    t.same(s.fields.map((f) => f.name).sort(), Object.keys(samples[type]).sort(), `${type}: fields equal the TS type's`);
    t.same(s.fields.slice(0, 4).map((f) => f.name), ['eventId', 'occurredAt', 'activityId', 'traceId'], `${type}: envelope first`);
  }
});

t.test('an incompatible schema change is refused by the registry', async (t) => {
  const subject = subjectFor(topic, 'TokenCredited');
  const broken = schemaOf('TokenCredited');
  broken.fields.push({ name: 'mandatoryNewField', type: 'string', doc: 'no default: not BACKWARD compatible' });
  const res = await fetch(`${cfg.schemaRegistryUrl}/subjects/${encodeURIComponent(subject)}/versions`, {
    method: 'POST', headers: { 'content-type': 'application/vnd.schemaregistry.v1+json' }, body: JSON.stringify({ schema: JSON.stringify(broken) }),
  });
  t.equal(res.status, 409, 'registry answers 409 Conflict');
});

t.test('bytes that are not an event are UndecodableMessage', async (t) => {
  const c = new EventCodec(cfg.schemaRegistryUrl);
  await t.rejects(c.decode(null), { name: 'UndecodableMessage' });
  await t.rejects(c.decode(Buffer.from('hello world')), { name: 'UndecodableMessage' });
  await t.rejects(c.decode(Buffer.from([0, 0x7f, 0xff, 0xff, 0xfe, 1])), { name: 'UndecodableMessage' }, 'unknown schema id');
  const good = await c.encode(topic, 'TokenCredited', samples.TokenCredited);
  await t.rejects(c.decode(good.subarray(0, 8)), { name: 'UndecodableMessage', message: /truncated/ }, 'truncated body');
  await t.rejects(c.decode(Buffer.concat([good, Buffer.from([0])])), { name: 'UndecodableMessage', message: /trailing data/ }, 'a byte after the body');
  t.same(await c.decode(good), { type: 'TokenCredited', data: samples.TokenCredited }, 'the whole message decodes');
});

t.test('a registered schema that is not a ledger event is UndecodableMessage; a registry outage is not', async (t) => {
  const subject = `${topic}-other`;
  const res = await fetch(`${cfg.schemaRegistryUrl}/subjects/${encodeURIComponent(subject)}/versions`, {
    method: 'POST', headers: { 'content-type': 'application/vnd.schemaregistry.v1+json' },
    body: JSON.stringify({ schema: JSON.stringify({ type: 'record', name: 'Other', namespace: 'io.example', fields: [{ name: 'x', type: 'int' }] }) }),
  });
  const { id } = (await res.json()) as { id: number };
  const other = Buffer.concat([Buffer.from([0, 0, 0, 0, 0]), Buffer.from([2])]);
  other.writeUInt32BE(id, 1);
  const c = new EventCodec(cfg.schemaRegistryUrl);
  await t.rejects(c.decode(other), { name: 'UndecodableMessage', message: /not a ledger event/ });
  t.throws(() => c.decodeLoaded(other), { name: 'UndecodableMessage' }, 'remembered once prepared');

  // Nothing listens on port 9: the registry is down, which is not the message's fault.
  const good = await c.encode(topic, 'TokenCredited', samples.TokenCredited);
  const down = new EventCodec('http://127.0.0.1:9');
  const err = await down.decode(good).then(() => null, (e: Error) => e);
  t.ok(err && err.name !== 'UndecodableMessage', `thrown for the caller to retry, not dead-lettered (${err?.name}: ${err?.message})`);
  t.throws(() => down.decodeLoaded(good), /was not prepared/, 'decoding an unprepared schema is a programming error, not a bad message');
});

t.test('well-formed Avro that breaks the ledger\'s rules for events is UndecodableMessage too', async (t) => {
  const c = new EventCodec(cfg.schemaRegistryUrl);
  const cases: [string, unknown][] = [
    ['an event id that is not a UUID', { ...samples.TokenCredited, eventId: 'e1' }],
    ['a negative amount', { ...samples.TokenIssued, amount: -5 }],
    ['a zero amount', { ...samples.WithdrawalRequested, amount: 0 }],
    ['an unknown currency', { ...samples.PayoutSettled, currency: 'XXX' }],
    ['a token id that is not a UUID', { ...samples.TokenCredited, tokenId: 'tok' }],
    ['a withdrawal id that is not a UUID', { ...samples.PayoutFailed, withdrawalId: 'w' }],
    ['attempt 0', { ...samples.PayoutAttemptFailed, attempt: 0 }],
    // Every rule is chosen per schema from its fields: one case per kind of rule and per type rule.
    ['an empty user id', { ...samples.PacketShareCredited, userId: '' }],
    ['an empty sender id', { ...samples.PacketRefunded, senderId: '' }],
    ['a packet id that is not a UUID', { ...samples.PacketClaimed, packetId: 'p' }],
    ['a claim with share -1', { ...samples.PacketClaimed, seq: -1 }],
    ['a packet of no shares', { ...samples.PacketCreated, count: 0 }],
    ['a won draw without its prize', { ...samples.LotteryDrawn, prizeId: '' }],
    ['a goods grant of nothing', { ...samples.GoodsGranted, quantity: 0 }],
    ['a pack with a coupon id that is not a UUID', { ...samples.GiftPackGranted, coupons: [{ ...samples.GiftPackGranted.coupons[0]!, couponId: 'c' }] }],
    ['a freeze with hold 0', { ...samples.CouponFrozen, hold: 0 }],
    ['an empty payment id', { ...samples.CouponRedeemed, paymentId: '' }],
  ];
  const typeOf = (x: unknown) => (Object.entries(samples).find(([, v]) => Object.keys(v).sort().join() === Object.keys(x as object).sort().join())![0]) as keyof typeof samples;
  for (const [what, data] of cases) {
    const buf = await c.encode(topic, typeOf(data), data as never);
    await t.rejects(c.decode(buf), { name: 'UndecodableMessage', message: /not a valid ledger event/ }, what);
  }
});
