import { randomBytes } from 'node:crypto';
import type { Config } from '../infra/config.ts';
import { adminToken, devUserTokenKey, DEV_USER_KEY_ID, tokenSigningKey } from '../infra/keys.ts';
import { parseUserKeys } from '../api/auth/user-jwt.ts';
import { publicKeyOf } from '../domain/tokens.ts';
import { parseUpstreamKeys } from '../api/auth/upstream-signature.ts';
import type { AppSecrets } from '../api/app.ts';
import { existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const DEV_UPSTREAM_FILE = join(dirname(fileURLToPath(import.meta.url)), '..', '.local', 'keys', 'upstream-dev');

/** The development upstream key (id=secret), created once outside production. */
export function devUpstreamKey(): { id: string; secret: string } {
  if (!existsSync(DEV_UPSTREAM_FILE)) {
    mkdirSync(dirname(DEV_UPSTREAM_FILE), { recursive: true });
    try {
      writeFileSync(DEV_UPSTREAM_FILE, `dev-upstream=${randomBytes(24).toString('base64url')}`, { mode: 0o600, flag: 'wx' });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  const [id, secret] = readFileSync(DEV_UPSTREAM_FILE, 'utf8').trim().split('=') as [string, string];
  return { id, secret };
}

export function loadSecrets(cfg: Config): AppSecrets {
  const spec = process.env.UPSTREAM_KEYS;
  if (!spec && process.env.NODE_ENV === 'production') throw new Error('UPSTREAM_KEYS must be provided in production');
  const upstreamKeys = spec ? parseUpstreamKeys(spec) : new Map([[devUpstreamKey().id, devUpstreamKey().secret]]);
  // User tokens are verified with the login service's public keys: USER_TOKEN_PUBLIC_KEYS = {"kid": "PEM"}.
  const userSpec = process.env.USER_TOKEN_PUBLIC_KEYS;
  const userTokenKeys = userSpec ? parseUserKeys(userSpec) : new Map([[DEV_USER_KEY_ID, publicKeyOf(devUserTokenKey())]]);
  return { tokenSigningKeyPem: tokenSigningKey(cfg.tokenSigningKeyPem), adminToken: adminToken(cfg.adminToken), upstreamKeys, userTokenKeys };
}
