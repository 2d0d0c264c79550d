import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateSigningKeyPem } from '../domain/tokens.ts';

/**
 * Secrets come from the environment. Outside production, a missing secret is created once
 * under .local/keys (git-ignored, mode 600) so a newcomer's first start just works; in
 * production a missing secret is a startup error, never a silent default.
 */
const KEY_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '.local', 'keys');

function devSecret(name: string, make: () => string): string {
  if (process.env.NODE_ENV === 'production') throw new Error(`${name} must be provided in production`);
  const file = join(KEY_DIR, name);
  if (!existsSync(file)) {
    mkdirSync(KEY_DIR, { recursive: true });
    try {
      writeFileSync(file, make(), { mode: 0o600, flag: 'wx' });
    } catch (err) {
      // Another process started at the same moment and wrote it first: use theirs.
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  chmodSync(file, 0o600);
  return readFileSync(file, 'utf8');
}

export function tokenSigningKey(fromEnv: string | undefined): string {
  return fromEnv ?? devSecret('token-signing-dev.pem', generateSigningKeyPem);
}

export function adminToken(fromEnv: string | undefined): string {
  return fromEnv ?? devSecret('admin-token', () => randomBytes(24).toString('base64url')).trim();
}

/** The development key that signs user tokens (the login service's job in production). */
export const DEV_USER_KEY_ID = 'dev-user-1';

export function devUserTokenKey(): string {
  return devSecret('user-token-dev.pem', generateSigningKeyPem);
}

/** The key the payout processor calls the payment provider with (the simulator in development). */
export function providerApiKey(fromEnv: string | undefined): string {
  return fromEnv ?? devSecret('provider-api-key', () => randomBytes(24).toString('base64url')).trim();
}
