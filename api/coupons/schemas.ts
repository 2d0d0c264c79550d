import { errorResponse } from '../errors.ts';
import { uuid as anyUuid } from '../input.ts';

const key = (description: string) => ({ type: 'string', minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9_.:-]+$', description }) as const;
const uuid = (description: string) => ({ ...anyUuid, description }) as const;
const platform = { type: 'string', enum: ['ios', 'android'], description: 'The platform the user pays on.' } as const;
const errors = { '4xx': errorResponse, '5xx': errorResponse } as const;

const stockLevel = {
  type: 'object', required: ['templateId', 'total', 'remaining', 'lowStock'],
  properties: { templateId: { type: 'string' }, total: { type: 'integer' }, remaining: { type: 'integer' }, lowStock: { type: 'boolean' } },
} as const;

export const coupon = {
  type: 'object', required: ['couponId', 'templateId', 'slot', 'platform', 'faceValue', 'currency', 'expiresAt', 'state'],
  properties: {
    couponId: { type: 'string' }, templateId: { type: 'string' }, slot: { type: 'string' }, platform: { type: 'string' },
    faceValue: { type: 'integer' }, currency: { type: 'string' }, expiresAt: { type: 'string', format: 'date-time' },
    state: { type: 'string', enum: ['available', 'frozen', 'redeemed', 'used_on_other_platform', 'expired'] },
  },
} as const;

export const pack = {
  type: 'object', required: ['grantId', 'packId', 'activityId', 'platform', 'status', 'grantedAt', 'claimedAt', 'coupons'],
  properties: {
    grantId: { type: 'string' }, packId: { type: 'string' }, activityId: { type: 'string' }, platform: { type: 'string' },
    status: { type: 'string', enum: ['unclaimed', 'claimed', 'partially_used', 'used'] },
    grantedAt: { type: 'string', format: 'date-time' }, claimedAt: { type: ['string', 'null'] }, coupons: { type: 'array', items: coupon },
  },
} as const;

const grantAnswer = {
  type: 'object', required: ['grantId', 'userId', 'orderNo', 'pack', 'stock', 'lowStock'],
  properties: {
    grantId: { type: 'string' }, userId: { type: 'string' }, orderNo: { type: 'string' }, pack,
    stock: { type: 'array', items: stockLevel, description: 'What is left of each template this grant took from.' },
    lowStock: { type: 'boolean', description: 'True when any of them is below the low-stock threshold: switch to a fallback award.' },
  },
} as const;

export const packGrantSchema = {
  body: {
    type: 'object', additionalProperties: false, required: ['activityId', 'orderNo', 'userId', 'packId', 'platform'],
    properties: {
      activityId: key('The activity granting the pack.'),
      orderNo: key('Upstream order number: one order, one pack, however often it is retried.'),
      userId: key('Who receives the pack.'),
      packId: key('The gift-pack template.'),
      platform: { ...platform, description: 'The platform the user received the pack on.' },
    },
  },
  response: { 200: grantAnswer, 201: grantAnswer, ...errors },
} as const;

const holdAnswer = {
  type: 'object', required: ['couponId', 'grantId', 'paymentId', 'state', 'packStatus'],
  properties: {
    couponId: { type: 'string', description: 'The coupon acted on: on the other platform, the matching coupon issued for it.' },
    grantId: { type: 'string' }, paymentId: { type: 'string' }, state: coupon.properties.state, packStatus: pack.properties.status,
    frozenUntil: { type: 'string', format: 'date-time' },
  },
} as const;

const holdBody = (extra: Record<string, unknown>, required: readonly string[]) => ({
  type: 'object', additionalProperties: false, required: ['userId', 'couponId', 'paymentId', ...required],
  properties: { userId: key('The coupon owner.'), couponId: uuid('The coupon, as the wallet lists it.'), paymentId: key('The payment using the coupon.'), ...extra },
}) as const;

export const freezeSchema = {
  body: holdBody({ platform, holdSeconds: { type: 'integer', minimum: 1, maximum: 86_400, description: 'How long the hold lasts unless redeemed or unfrozen.' } }, ['platform']),
  response: { 200: holdAnswer, ...errors },
} as const;
export const unfreezeSchema = { body: holdBody({}, []), response: { 200: holdAnswer, ...errors } } as const;
export const redeemSchema = unfreezeSchema;

export const walletCouponsSchema = {
  params: { type: 'object', required: ['userId'], properties: { userId: key('The wallet owner.') } },
  response: {
    200: {
      type: 'object', required: ['userId', 'packs', 'asOf', 'degraded'],
      properties: { userId: { type: 'string' }, packs: { type: 'array', items: pack }, asOf: { type: 'string' }, degraded: { type: 'boolean' } },
    },
    ...errors,
  },
} as const;

export const claimSchema = {
  params: { type: 'object', required: ['userId', 'grantId'], properties: { userId: key('The wallet owner.'), grantId: uuid('The pack to claim.') } },
  response: { 200: pack, ...errors },
} as const;

export const templateSchema = {
  params: { type: 'object', required: ['templateId'], properties: { templateId: key('The coupon template.') } },
  body: {
    type: 'object', additionalProperties: false, required: ['platform', 'faceValue', 'currency', 'validDays', 'totalStock'],
    properties: {
      platform, faceValue: { type: 'integer', minimum: 1, maximum: 100_000_000, description: 'Minor units off a payment.' },
      currency: { type: 'string', enum: ['CNY'] }, validDays: { type: 'integer', minimum: 1, maximum: 3650 },
      totalStock: { type: 'integer', minimum: 0, maximum: 10_000_000_000 },
      lowStockPercent: { type: ['integer', 'null'], minimum: 0, maximum: 100, description: 'Low-stock signal below this share; null: the default.' },
    },
  },
  response: { '4xx': errorResponse },
} as const;

export const giftPackSchema = {
  params: { type: 'object', required: ['packId'], properties: { packId: key('The gift pack.') } },
  body: {
    type: 'object', additionalProperties: false, required: ['name', 'slots'],
    properties: {
      name: { type: 'string', minLength: 1, maxLength: 200 },
      slots: {
        type: 'array', minItems: 1, maxItems: 20,
        items: {
          type: 'object', additionalProperties: false, required: ['slot', 'ios', 'android'],
          properties: { slot: key('A face value of the pack.'), ios: key('Its iOS template.'), android: key('Its Android template.') },
        },
      },
    },
  },
  response: { '4xx': errorResponse },
} as const;
