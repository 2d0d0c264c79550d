import t from 'tap';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { signUserToken, verifyUserToken, parseUserKeys } from '../../api/auth/user-jwt.ts';

const ed = generateKeyPairSync('ed25519');
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const pem = (k: KeyObject) => k.export({ type: 'pkcs8', format: 'pem' }).toString();
const keys = new Map([['ed', ed.publicKey], ['ec', ec.publicKey]]);

t.test('EdDSA and ES256 tokens verify; their subject is the user', async (t) => {
  for (const [kid, priv] of [['ed', ed.privateKey], ['ec', ec.privateKey]] as const) {
    const check = verifyUserToken(signUserToken(pem(priv), kid, 'u-1'), keys);
    t.ok(check.ok, kid);
    if (check.ok) t.equal(check.claims.sub, 'u-1');
  }
});

t.test('the key decides the algorithm, not the token', async (t) => {
  const token = signUserToken(pem(ed.privateKey), 'ed', 'u-1');
  const [, body, sig] = token.split('.');
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  t.match(verifyUserToken(`${b64({ alg: 'none', kid: 'ed' })}.${body}.`, keys), { ok: false, code: 'BAD_USER_SIGNATURE' }, 'alg none');
  t.match(verifyUserToken(`${b64({ alg: 'ES256', kid: 'ed' })}.${body}.${sig}`, keys), { ok: false, code: 'BAD_USER_SIGNATURE' }, 'another alg named in the header');
  t.match(verifyUserToken(signUserToken(pem(ec.privateKey), 'ed', 'u-1'), keys), { ok: false, code: 'BAD_USER_SIGNATURE' }, 'an EC signature under an Ed25519 key id');
});

t.test('expiry, not-before and audience are enforced, with a little clock skew allowed', async (t) => {
  const now = Date.now();
  const token = signUserToken(pem(ed.privateKey), 'ed', 'u-1', { nowMs: now, ttlSec: 60 });
  t.ok(verifyUserToken(token, keys, now + 80_000).ok, 'within 30 s of skew after expiry');
  t.match(verifyUserToken(token, keys, now + 91_000), { ok: false, code: 'USER_TOKEN_EXPIRED' });
  t.match(verifyUserToken(signUserToken(pem(ed.privateKey), 'ed', 'u-1', { aud: 'x' }), keys), { ok: false, code: 'WRONG_AUDIENCE' });
  t.match(verifyUserToken('a.b', keys), { ok: false, code: 'MALFORMED_USER_TOKEN' });
});

t.test('USER_TOKEN_PUBLIC_KEYS accepts Ed25519 and P-256 keys only', async (t) => {
  const spec = JSON.stringify({ a: ed.publicKey.export({ type: 'spki', format: 'pem' }), b: ec.publicKey.export({ type: 'spki', format: 'pem' }) });
  t.same([...parseUserKeys(spec).keys()], ['a', 'b']);
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  t.throws(() => parseUserKeys(JSON.stringify({ r: rsa.publicKey.export({ type: 'spki', format: 'pem' }) })), /Ed25519 or P-256/);
  t.throws(() => parseUserKeys('{}'), /no keys/);
});
