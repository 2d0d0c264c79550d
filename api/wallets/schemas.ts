import { errorResponse } from '../errors.ts';
import { amount, userId, uuid } from '../input.ts';

const id = { type: 'string', minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9_.:-]+$' } as const;
const currency = { type: 'string', pattern: '^[A-Z]{3}$', default: 'CNY' } as const;
const userParams = { type: 'object', additionalProperties: false, required: ['userId'], properties: { userId } } as const;

const withdrawalView = {
  type: 'object',
  required: ['withdrawalId', 'userId', 'amount', 'currency', 'status', 'requestedAt', 'resolvedAt', 'reason'],
  properties: {
    withdrawalId: { type: 'string' }, userId: { type: 'string' }, amount: { type: 'integer' }, currency: { type: 'string' },
    status: { type: 'string', enum: ['withdrawing', 'settled', 'failed', 'rejected'] },
    requestedAt: { type: 'string' }, resolvedAt: { type: ['string', 'null'] }, reason: { type: ['string', 'null'] },
  },
} as const;

export const balanceSchema = {
  params: userParams,
  querystring: { type: 'object', additionalProperties: false, properties: { currency } },
  response: {
    200: {
      type: 'object',
      required: ['userId', 'currency', 'available', 'pending', 'withdrawing', 'cumulativeIncome'],
      properties: {
        userId: { type: 'string' }, currency: { type: 'string' },
        available: { type: 'integer' }, pending: { type: 'integer' }, withdrawing: { type: 'integer' },
        cumulativeIncome: { type: 'integer' },
      },
    },
    '4xx': errorResponse,
  },
} as const;

export const statementSchema = {
  params: userParams,
  querystring: {
    type: 'object', additionalProperties: false,
    properties: { limit: { type: 'string', pattern: '^[1-9][0-9]?$|^100$' }, cursor: { type: 'string', minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_-]+$' } },
  },
  response: {
    200: {
      type: 'object', required: ['entries', 'nextCursor'],
      properties: {
        entries: {
          type: 'array',
          items: {
            type: 'object',
            required: ['id', 'kind', 'amount', 'currency', 'status', 'text', 'activityId', 'sceneId', 'occurredAt', 'reason'],
            properties: {
              id: { type: 'string' }, kind: { type: 'string', enum: ['reward', 'withdrawal'] }, amount: { type: 'integer' },
              currency: { type: 'string' }, status: { type: 'string' }, text: { type: 'string' },
              activityId: { type: ['string', 'null'] }, sceneId: { type: ['string', 'null'] }, occurredAt: { type: 'string' },
              reason: { type: ['string', 'null'] },
            },
          },
        },
        nextCursor: { type: ['string', 'null'] },
      },
    },
    '4xx': errorResponse,
  },
} as const;

export const rewardsSchema = {
  params: { type: 'object', additionalProperties: false, required: ['userId', 'activityId'], properties: { userId, activityId: id } },
  response: {
    200: {
      type: 'object', required: ['userId', 'activityId', 'received', 'count', 'amount'],
      properties: { userId: { type: 'string' }, activityId: { type: 'string' }, received: { type: 'boolean' }, count: { type: 'integer' }, amount: { type: 'integer' } },
    },
    '4xx': errorResponse,
  },
} as const;

export const withdrawSchema = {
  params: userParams,
  body: {
    type: 'object', additionalProperties: false, required: ['amount', 'currency'],
    properties: {
      amount,
      currency: { type: 'string', pattern: '^[A-Z]{3}$' },
    },
  },
  response: { 200: withdrawalView, 201: withdrawalView, '4xx': errorResponse, '5xx': errorResponse },
} as const;

export const withdrawalStatusSchema = {
  params: { type: 'object', additionalProperties: false, required: ['userId', 'withdrawalId'], properties: { userId, withdrawalId: uuid } },
  response: { 200: withdrawalView, '4xx': errorResponse },
} as const;

export const IDEMPOTENCY_KEY = /^[A-Za-z0-9_.:-]{8,128}$/;
