import type { FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Redis } from 'ioredis';
import { ApiError } from '../errors.ts';
import { HEADERS, computeSignature, signaturesEqual, stringToSign } from './upstream-signature.ts';

declare module 'fastify' {
  interface FastifyRequest {
    upstreamService?: string;
    rawBody?: string;
  }
  interface FastifyContextConfig {
    upstreamAuth?: boolean;
  }
}

export interface UpstreamAuthOptions {
  keys: ReadonlyMap<string, string>;
  redis: Redis;
  noncePrefix: string;
  /** How far a request's timestamp may be from our clock, ms. */
  maxSkewMs?: number;
}

const header = (v: string | string[] | undefined) => (typeof v === 'string' ? v : undefined);

/** Who asked, from where, with which request: recorded in every event an upstream request produces. */
export function upstreamAudit(req: FastifyRequest): { grantedBy: string; clientAddress: string; requestId: string; traceId?: string } {
  return { grantedBy: req.upstreamService ?? 'unknown', clientAddress: req.ip, requestId: req.id, traceId: header(req.headers['x-trace-id']) };
}

/**
 * Routes with `config: { upstreamAuth: true }` require a signed request. The nonce is
 * remembered (in Redis, shared by all instances) for twice the skew window, so a replay
 * inside the window is refused and one outside it is refused as stale.
 */
export const upstreamAuth = fp<UpstreamAuthOptions>(async (app, opts) => {
  const maxSkew = opts.maxSkewMs ?? 60_000;
  app.addHook('preValidation', async (req) => {
    if (!req.routeOptions.config.upstreamAuth) return;
    const keyId = header(req.headers[HEADERS.keyId]);
    const timestamp = header(req.headers[HEADERS.timestamp]);
    const nonce = header(req.headers[HEADERS.nonce]);
    const signature = header(req.headers[HEADERS.signature]);
    if (!keyId || !timestamp || !nonce || !signature) {
      throw new ApiError(401, 'UNSIGNED_REQUEST', `Upstream requests must be signed: send ${Object.values(HEADERS).join(', ')}.`);
    }
    const secret = opts.keys.get(keyId);
    if (!secret) throw new ApiError(401, 'UNKNOWN_KEY', `Key "${keyId}" is not a known upstream service key.`);
    const ts = Number(timestamp);
    if (!Number.isSafeInteger(ts) || Math.abs(Date.now() - ts) > maxSkew) {
      throw new ApiError(401, 'STALE_REQUEST', `The request timestamp is more than ${maxSkew / 1000} s from the server clock.`);
    }
    if (nonce.length < 8 || nonce.length > 128) throw new ApiError(401, 'BAD_NONCE', 'The nonce must be 8 to 128 characters.');
    const expected = computeSignature(secret, stringToSign(req.method, req.url, timestamp, nonce, req.rawBody ?? ''));
    if (!signaturesEqual(expected, signature)) throw new ApiError(401, 'BAD_SIGNATURE', 'The request signature does not match its contents.');
    const fresh = await opts.redis.set(`${opts.noncePrefix}:nonce:${keyId}:${nonce}`, '1', 'PX', maxSkew * 2, 'NX');
    if (fresh !== 'OK') throw new ApiError(401, 'REPLAYED_REQUEST', 'This signed request was already received; sign each request with a new nonce.');
    req.upstreamService = keyId;
  });
});
