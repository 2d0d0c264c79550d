import fp from 'fastify-plugin';
import type { KeyObject } from 'node:crypto';
import { ApiError } from '../errors.ts';
import { verifyUserToken } from './user-jwt.ts';

declare module 'fastify' {
  interface FastifyRequest {
    userId?: string;
  }
  interface FastifyContextConfig {
    userAuth?: boolean;
  }
}

/**
 * Routes with `config: { userAuth: true }` require "Authorization: Bearer <user JWT>", and a
 * route with a :userId parameter only serves the user the token names: a user sees and
 * moves only their own money.
 */
export const userAuth = fp<{ keys: ReadonlyMap<string, KeyObject> }>(async (app, { keys }) => {
  app.addHook('preValidation', async (req) => {
    if (!req.routeOptions.config.userAuth) return;
    const auth = req.headers.authorization;
    if (typeof auth !== 'string' || !auth.startsWith('Bearer ')) {
      throw new ApiError(401, 'USER_AUTH_REQUIRED', 'Send your user token as "Authorization: Bearer <token>".');
    }
    const check = verifyUserToken(auth.slice(7).trim(), keys);
    if (!check.ok) throw new ApiError(401, check.code, check.message);
    const wanted = (req.params as { userId?: unknown } | undefined)?.userId;
    if (wanted !== undefined && wanted !== check.claims.sub) {
      throw new ApiError(403, 'NOT_YOUR_WALLET', 'A user token only gives access to its own wallet.');
    }
    req.userId = check.claims.sub;
  });
});
