import { errorResponse } from '../errors.ts';
import { amount } from '../input.ts';

const id = (description: string) => ({ type: 'string', minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9_.:-]+$', description }) as const;

export const grantBody = {
  type: 'object',
  additionalProperties: false,
  required: ['activityId', 'sceneId', 'orderNo', 'userId', 'amount', 'currency'],
  properties: {
    activityId: id('Parent activity id.'),
    sceneId: id('Scene within the activity.'),
    orderNo: id('Upstream order number: the idempotency key within the activity.'),
    userId: id('Receiving user.'),
    amount: { ...amount, description: 'Minor units (fen).' },
    currency: { type: 'string', pattern: '^[A-Z]{3}$' },
  },
} as const;

export const grantResponse = {
  type: 'object',
  required: ['tokenId', 'token', 'status', 'userId', 'amount', 'currency', 'issuedAt'],
  properties: {
    tokenId: { type: 'string' },
    token: { type: 'string' },
    status: { type: 'string', enum: ['pending'] },
    userId: { type: 'string' },
    activityId: { type: 'string' },
    orderNo: { type: 'string' },
    amount: { type: 'integer' },
    currency: { type: 'string' },
    issuedAt: { type: 'string', format: 'date-time' },
    replayed: { type: 'boolean' },
  },
} as const;

export const grantRouteSchema = {
  body: grantBody,
  response: { 200: grantResponse, 201: grantResponse, '4xx': errorResponse, '5xx': errorResponse },
} as const;
