import fp from 'fastify-plugin';
import type { KeyObject } from 'node:crypto';
import { ApiError } from '../errors.ts';
import { verifyUserToken, type UserClaims } from './user-jwt.ts';

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
  // An app sends the same session token with every wallet call; a signature verified once
  // need not be verified again. Expiry is still checked on every use.
  const verified = new Map<string, UserClaims>();
  const MAX_CACHED = 50_000;
  const check = (token: string) => {
    const hit = verified.get(token);
    if (hit && hit.exp * 1000 > Date.now()) return { ok: true as const, claims: hit };
    const result = verifyUserToken(token, keys);
    if (result.ok) {
      if (verified.size >= MAX_CACHED) verified.delete(verified.keys().next().value!);
      verified.set(token, result.claims);
    }
    return result;
  };

  app.addHook('preValidation', async (req) => {
    if (!req.routeOptions.config.userAuth) return;
    const auth = req.headers.authorization;
    if (typeof auth !== 'string' || !auth.startsWith('Bearer ')) {
      throw new ApiError(401, 'USER_AUTH_REQUIRED', 'Send your user token as "Authorization: Bearer <token>".');
    }
    const result = check(auth.slice(7).trim());
    if (!result.ok) throw new ApiError(401, result.code, result.message);
    const wanted = (req.params as { userId?: unknown } | undefined)?.userId;
    if (wanted !== undefined && wanted !== result.claims.sub) {
      throw new ApiError(403, 'NOT_YOUR_WALLET', 'A user token only gives access to its own wallet.');
    }
    req.userId = result.claims.sub;
  });
});
