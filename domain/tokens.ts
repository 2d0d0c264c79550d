import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import type { Currency } from './money.ts';

/**
 * A grant token: the claims the user now holds, signed with Ed25519 so that any service
 * holding the public key can check it offline. Ed25519 signatures are deterministic, so
 * re-signing the same claims (an idempotent retry) yields the identical token.
 *
 * Wire form: `hb1.<base64url(JSON claims)>.<base64url(signature)>`.
 */
export interface TokenClaims {
  tokenId: string;
  userId: string;
  amount: number;
  currency: Currency;
  activityId: string;
  sceneId: string;
  orderNo: string;
  /** Epoch milliseconds of the first acceptance of the order. */
  issuedAt: number;
  keyId: string;
}

const CLAIM_ORDER: readonly (keyof TokenClaims)[] = [
  'tokenId', 'userId', 'amount', 'currency', 'activityId', 'sceneId', 'orderNo', 'issuedAt', 'keyId',
];
const PREFIX = 'hb1';

/** Claims serialised in one fixed order, so the signed bytes never depend on object key order. */
function canonical(claims: TokenClaims): Buffer {
  return Buffer.from(JSON.stringify(CLAIM_ORDER.map((k) => claims[k])), 'utf8');
}

export interface TokenSigner {
  keyId: string;
  sign(claims: Omit<TokenClaims, 'keyId'>): { token: string; signature: string };
}

export function tokenSigner(privateKeyPem: string, keyId: string): TokenSigner {
  const key = createPrivateKey(privateKeyPem);
  if (key.asymmetricKeyType !== 'ed25519') throw new Error('the token signing key must be an Ed25519 private key');
  return {
    keyId,
    sign(partial) {
      const claims: TokenClaims = { ...partial, keyId };
      const body = canonical(claims);
      const signature = sign(null, body, key).toString('base64url');
      return { token: `${PREFIX}.${body.toString('base64url')}.${signature}`, signature };
    },
  };
}

export type TokenCheck = { ok: true; claims: TokenClaims } | { ok: false; reason: 'malformed' | 'unknown_key' | 'bad_signature' };

/** Verifies a token against the public keys by id; a forged or altered token fails. */
export function verifyToken(token: string, publicKeys: ReadonlyMap<string, KeyObject>): TokenCheck {
  const parts = token.split('.');
  if (parts.length !== 3 || parts[0] !== PREFIX) return { ok: false, reason: 'malformed' };
  let values: unknown;
  try {
    values = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8'));
  } catch {
    return { ok: false, reason: 'malformed' };
  }
  if (!Array.isArray(values) || values.length !== CLAIM_ORDER.length) return { ok: false, reason: 'malformed' };
  const claims = Object.fromEntries(CLAIM_ORDER.map((k, i) => [k, values[i]])) as unknown as TokenClaims;
  const key = publicKeys.get(String(claims.keyId));
  if (!key) return { ok: false, reason: 'unknown_key' };
  const good = verify(null, canonical(claims), key, Buffer.from(parts[2]!, 'base64url'));
  return good ? { ok: true, claims } : { ok: false, reason: 'bad_signature' };
}

export function publicKeyOf(privateKeyPem: string): KeyObject {
  return createPublicKey(createPrivateKey(privateKeyPem));
}

export function generateSigningKeyPem(): string {
  return generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
}
