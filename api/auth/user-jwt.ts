import { createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { isUserId } from '../input.ts';

/**
 * User tokens: compact JWS (JWT) signed by the login service with EdDSA (Ed25519) or ES256
 * (P-256). We only verify; the private key never reaches the ledger in production. The
 * algorithm is taken from the key, never from the token header alone, so a token cannot
 * choose a weaker check ("alg": "none" or HMAC with a public key).
 */
export const USER_AUDIENCE = 'hongbao-wallet';

export interface UserClaims {
  sub: string;
  exp: number;
  iat?: number;
  nbf?: number;
  aud: string | string[];
}

export type UserTokenCheck =
  | { ok: true; claims: UserClaims }
  | { ok: false; code: 'MALFORMED_USER_TOKEN' | 'UNKNOWN_USER_KEY' | 'BAD_USER_SIGNATURE' | 'USER_TOKEN_EXPIRED' | 'USER_TOKEN_NOT_YET_VALID' | 'WRONG_AUDIENCE'; message: string };

type Alg = 'EdDSA' | 'ES256';

function algOf(key: KeyObject): Alg {
  if (key.asymmetricKeyType === 'ed25519') return 'EdDSA';
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ES256';
  throw new Error(`user token keys must be Ed25519 or P-256, got ${key.asymmetricKeyType}`);
}

function b64json(part: string): unknown {
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
}

/** Checks signature, expiry (with `skewSec` of clock tolerance) and audience. */
export function verifyUserToken(token: string, keys: ReadonlyMap<string, KeyObject>, nowMs = Date.now(), skewSec = 30): UserTokenCheck {
  const parts = token.split('.');
  if (parts.length !== 3 || parts.some((p) => !/^[A-Za-z0-9_-]*$/.test(p))) return { ok: false, code: 'MALFORMED_USER_TOKEN', message: 'The user token is not a JWT.' };
  let header: { alg?: unknown; kid?: unknown };
  let claims: Partial<UserClaims>;
  try {
    header = b64json(parts[0]!) as typeof header;
    claims = b64json(parts[1]!) as Partial<UserClaims>;
  } catch {
    return { ok: false, code: 'MALFORMED_USER_TOKEN', message: 'The user token is not a JWT.' };
  }
  if (typeof header !== 'object' || header === null || typeof claims !== 'object' || claims === null) {
    return { ok: false, code: 'MALFORMED_USER_TOKEN', message: 'The user token is not a JWT.' };
  }
  const key = typeof header.kid === 'string' ? keys.get(header.kid) : undefined;
  if (!key) return { ok: false, code: 'UNKNOWN_USER_KEY', message: 'The user token was signed with a key this service does not know.' };
  const alg = algOf(key);
  if (header.alg !== alg) return { ok: false, code: 'BAD_USER_SIGNATURE', message: `The user token must be signed with ${alg}.` };
  const signed = Buffer.from(`${parts[0]}.${parts[1]}`, 'ascii');
  const signature = Buffer.from(parts[2]!, 'base64url');
  const good = alg === 'EdDSA'
    ? verify(null, signed, key, signature)
    : verify('sha256', signed, { key, dsaEncoding: 'ieee-p1363' }, signature);
  if (!good) return { ok: false, code: 'BAD_USER_SIGNATURE', message: 'The user token signature is not valid.' };
  if (typeof claims.sub !== 'string' || claims.sub === '' || typeof claims.exp !== 'number') {
    return { ok: false, code: 'MALFORMED_USER_TOKEN', message: 'The user token must carry "sub" and "exp".' };
  }
  // A validly signed token still names its user in text we store: it must be a user id like any other.
  if (!isUserId(claims.sub)) {
    return { ok: false, code: 'MALFORMED_USER_TOKEN', message: 'The user token\'s "sub" is not a user id (1 to 128 letters, digits or _.:-).' };
  }
  const now = nowMs / 1000;
  if (claims.exp + skewSec <= now) return { ok: false, code: 'USER_TOKEN_EXPIRED', message: 'The user token has expired; sign in again.' };
  if (typeof claims.nbf === 'number' && claims.nbf - skewSec > now) return { ok: false, code: 'USER_TOKEN_NOT_YET_VALID', message: 'The user token is not valid yet.' };
  const aud = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
  if (!aud.includes(USER_AUDIENCE)) return { ok: false, code: 'WRONG_AUDIENCE', message: `The user token is not meant for ${USER_AUDIENCE}.` };
  return { ok: true, claims: claims as UserClaims };
}

/** Signs a user token. The login service's job; here for development and tests. */
export function signUserToken(privateKeyPem: string, kid: string, sub: string, opts: { ttlSec?: number; nowMs?: number; aud?: string } = {}): string {
  const key = createPrivateKey(privateKeyPem);
  const alg = algOf(createPublicKey(key));
  const iat = Math.floor((opts.nowMs ?? Date.now()) / 1000);
  const enc = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const input = `${enc({ alg, typ: 'JWT', kid })}.${enc({ sub, aud: opts.aud ?? USER_AUDIENCE, iat, exp: iat + (opts.ttlSec ?? 3600) })}`;
  const sig = alg === 'EdDSA'
    ? sign(null, Buffer.from(input), key)
    : sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
  return `${input}.${sig.toString('base64url')}`;
}

/** Parses USER_TOKEN_PUBLIC_KEYS: a JSON object of key id → public key PEM. */
export function parseUserKeys(json: string): Map<string, KeyObject> {
  const obj = JSON.parse(json) as Record<string, string>;
  const keys = new Map<string, KeyObject>();
  for (const [kid, pem] of Object.entries(obj)) {
    const key = createPublicKey(pem);
    algOf(key);
    keys.set(kid, key);
  }
  if (keys.size === 0) throw new Error('USER_TOKEN_PUBLIC_KEYS names no keys');
  return keys;
}
