import type { FastifyPluginAsync } from 'fastify';
import type { WalletReader } from './reader.ts';
import { errorResponse } from '../errors.ts';

const walletSchema = {
  params: {
    type: 'object', additionalProperties: false, required: ['userId'],
    properties: { userId: { type: 'string', minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9_.:-]+$' } },
  },
  querystring: {
    type: 'object', additionalProperties: false,
    properties: { currency: { type: 'string', pattern: '^[A-Z]{3}$', default: 'CNY' } },
  },
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

/** The wallet page: balance with pending tokens merged in, so the crediting backlog is invisible. */
export const walletRoutes: FastifyPluginAsync<{ wallets: WalletReader }> = async (app, { wallets }) => {
  app.get<{ Params: { userId: string }; Querystring: { currency: string } }>(
    '/v1/wallets/:userId', { schema: walletSchema },
    async (req) => wallets.balance(req.params.userId, req.query.currency),
  );
};
