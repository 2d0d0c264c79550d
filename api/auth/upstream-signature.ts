import { createHash, createHmac, randomUUID, timingSafeEqual } from 'node:crypto';

/**
 * Signed requests from upstream services. The signature is HMAC-SHA256 with the service's
 * shared secret over method, path (with query), timestamp, nonce and the body's SHA-256, so
 * a captured request cannot be altered, and with the timestamp window and single-use nonce
 * it cannot be replayed either.
 */
export const HEADERS = {
  keyId: 'x-hb-key-id',
  timestamp: 'x-hb-timestamp',
  nonce: 'x-hb-nonce',
  signature: 'x-hb-signature',
} as const;

export function stringToSign(method: string, path: string, timestamp: string, nonce: string, body: string): string {
  const bodyHash = createHash('sha256').update(body, 'utf8').digest('hex');
  return `${method.toUpperCase()}\n${path}\n${timestamp}\n${nonce}\n${bodyHash}`;
}

export function computeSignature(secret: string, text: string): string {
  return createHmac('sha256', secret).update(text, 'utf8').digest('base64url');
}

export function signaturesEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** Headers for a signed request: what an upstream service (or a test, or the bench) sends. */
export function signRequest(
  key: { id: string; secret: string }, method: string, path: string, body: string,
  opts: { now?: number; nonce?: string } = {},
): Record<string, string> {
  const timestamp = String(opts.now ?? Date.now());
  const nonce = opts.nonce ?? randomUUID();
  return {
    [HEADERS.keyId]: key.id,
    [HEADERS.timestamp]: timestamp,
    [HEADERS.nonce]: nonce,
    [HEADERS.signature]: computeSignature(key.secret, stringToSign(method, path, timestamp, nonce, body)),
  };
}

/** UPSTREAM_KEYS="svc-a=secret1,svc-b=secret2" — key id to secret. */
export function parseUpstreamKeys(spec: string): Map<string, string> {
  const keys = new Map<string, string>();
  for (const part of spec.split(',').map((s) => s.trim()).filter(Boolean)) {
    const eq = part.indexOf('=');
    if (eq <= 0 || eq === part.length - 1) throw new Error('UPSTREAM_KEYS must look like "service-id=secret,other=secret2"');
    keys.set(part.slice(0, eq), part.slice(eq + 1));
  }
  return keys;
}
