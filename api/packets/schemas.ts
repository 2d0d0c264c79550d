import { errorResponse } from '../errors.ts';
import { amount, uuid } from '../input.ts';

const packetParams = { type: 'object', additionalProperties: false, required: ['packetId'], properties: { packetId: uuid } } as const;
const time = { type: 'string' } as const;

const createdPacket = {
  type: 'object',
  required: ['packetId', 'senderId', 'amount', 'currency', 'count', 'greeting', 'createdAt', 'expiresAt'],
  properties: {
    packetId: { type: 'string' }, senderId: { type: 'string' }, amount: { type: 'integer' }, currency: { type: 'string' },
    count: { type: 'integer' }, greeting: { type: 'string' }, createdAt: time, expiresAt: time,
  },
} as const;

export const createPacketSchema = {
  body: {
    type: 'object', additionalProperties: false, required: ['amount', 'currency', 'count'],
    properties: {
      // Bounds beyond these (the configured caps) are checked by domain/packets.ts with a precise code.
      amount,
      currency: { type: 'string', pattern: '^[A-Z]{3}$' },
      count: { type: 'integer', minimum: 1, maximum: Number.MAX_SAFE_INTEGER },
      expirySeconds: { type: 'integer', minimum: 1, maximum: Number.MAX_SAFE_INTEGER },
      greeting: { type: 'string', minLength: 1, maxLength: 64 },
    },
  },
  response: { 200: createdPacket, 201: createdPacket, '4xx': errorResponse, '5xx': errorResponse },
} as const;

const grabbed = {
  type: 'object', required: ['packetId', 'userId', 'seq', 'amount', 'currency', 'claimedAt'],
  properties: { packetId: { type: 'string' }, userId: { type: 'string' }, seq: { type: 'integer' }, amount: { type: 'integer' }, currency: { type: 'string' }, claimedAt: time },
} as const;

export const grabSchema = {
  params: packetParams,
  response: { 200: grabbed, 201: grabbed, '4xx': errorResponse, '5xx': errorResponse },
} as const;

const claim = {
  type: 'object', required: ['userId', 'seq', 'amount', 'claimedAt', 'creditedAt'],
  properties: { userId: { type: 'string' }, seq: { type: 'integer' }, amount: { type: 'integer' }, claimedAt: time, creditedAt: { type: ['string', 'null'] } },
} as const;

export const packetDetailsSchema = {
  params: packetParams,
  response: {
    200: {
      type: 'object',
      required: ['packetId', 'senderId', 'amount', 'currency', 'count', 'greeting', 'createdAt', 'expiresAt', 'status', 'claimedCount', 'claimedAmount', 'refundedAmount', 'closedAt', 'claims', 'bestLuck'],
      properties: {
        ...createdPacket.properties,
        status: { type: 'string', enum: ['open', 'finished', 'refunded', 'rejected'] },
        claimedCount: { type: 'integer' }, claimedAmount: { type: 'integer' }, refundedAmount: { type: 'integer' }, closedAt: { type: ['string', 'null'] },
        claims: { anyOf: [{ type: 'array', items: claim }, { type: 'null' }] },
        bestLuck: { anyOf: [claim, { type: 'null' }] },
      },
    },
    '4xx': errorResponse,
  },
} as const;
