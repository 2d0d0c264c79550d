import type { FastifyPluginAsync } from 'fastify';
import { decodeCursor, type WalletReader } from './reader.ts';
import type { WithdrawalService } from './withdrawal-service.ts';
import { IDEMPOTENCY_KEY, balanceSchema, rewardsSchema, statementSchema, withdrawSchema, withdrawalStatusSchema } from './schemas.ts';
import { ApiError } from '../errors.ts';

/**
 * The wallet page. Every route needs the user's own token (see auth/user-plugin.ts).
 * Balances merge pending tokens, so the crediting backlog is invisible to the user.
 */
export const walletRoutes: FastifyPluginAsync<{ wallets: WalletReader; withdrawals: WithdrawalService }> = async (app, { wallets, withdrawals }) => {
  app.addHook('onRoute', (route) => {
    route.config = { ...(route.config ?? {}), userAuth: true };
  });

  app.get<{ Params: { userId: string }; Querystring: { currency: string } }>(
    '/v1/wallets/:userId', { schema: balanceSchema },
    async (req) => wallets.balance(req.params.userId, req.query.currency),
  );

  app.get<{ Params: { userId: string }; Querystring: { limit?: string; cursor?: string } }>(
    '/v1/wallets/:userId/statement', { schema: statementSchema },
    async (req) => {
      const before = req.query.cursor === undefined ? null : decodeCursor(req.query.cursor);
      if (before === null && req.query.cursor !== undefined) {
        throw new ApiError(400, 'INVALID_CURSOR', 'The cursor is not one this API gave out; start again without a cursor.');
      }
      return wallets.statement(req.params.userId, Number(req.query.limit ?? 20), before);
    },
  );

  app.get<{ Params: { userId: string; activityId: string } }>(
    '/v1/wallets/:userId/rewards/:activityId', { schema: rewardsSchema },
    async (req) => ({ userId: req.params.userId, activityId: req.params.activityId, ...(await wallets.rewardsIn(req.params.userId, req.params.activityId)) }),
  );

  app.post<{ Params: { userId: string }; Body: { amount: number; currency: string } }>(
    '/v1/wallets/:userId/withdrawals', { schema: withdrawSchema },
    async (req, reply) => {
      const key = req.headers['idempotency-key'];
      if (typeof key !== 'string' || !IDEMPOTENCY_KEY.test(key)) {
        throw new ApiError(400, 'MISSING_IDEMPOTENCY_KEY', 'Send an Idempotency-Key header of 8 to 128 letters, digits or _.:- so a retry cannot withdraw twice.');
      }
      const answer = await withdrawals.withdraw(req.params.userId, key, req.body.amount, req.body.currency, {
        requestedBy: req.userId!, clientAddress: req.ip, requestId: req.id,
      });
      if (answer.replayed) void reply.header('idempotent-replayed', 'true');
      return reply.status(answer.replayed ? 200 : 201).send(answer.body);
    },
  );

  app.get<{ Params: { userId: string; withdrawalId: string } }>(
    '/v1/wallets/:userId/withdrawals/:withdrawalId', { schema: withdrawalStatusSchema },
    async (req) => {
      const w = await wallets.withdrawal(req.params.userId, req.params.withdrawalId);
      if (!w) throw new ApiError(404, 'UNKNOWN_WITHDRAWAL', 'There is no such withdrawal in this wallet (a just-accepted one appears within moments).');
      return w;
    },
  );
};
