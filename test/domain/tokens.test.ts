import t from 'tap';
import { generateSigningKeyPem, publicKeyOf, tokenSigner, verifyToken } from '../../domain/tokens.ts';

const pem = generateSigningKeyPem();
const signer = tokenSigner(pem, 'k1');
const keys = new Map([['k1', publicKeyOf(pem)]]);
const claims = { tokenId: 't1', userId: 'u1', amount: 88, currency: 'CNY' as const, activityId: 'a1', sceneId: 's1', orderNo: 'o1', issuedAt: 1_700_000_000_000 };

t.test('a signed token verifies and carries its claims', async (t) => {
  const { token } = signer.sign(claims);
  const r = verifyToken(token, keys);
  t.ok(r.ok);
  if (r.ok) t.same(r.claims, { ...claims, keyId: 'k1' });
});

t.test('signing is deterministic: a retry yields the identical token', async (t) => {
  t.equal(signer.sign(claims).token, signer.sign({ ...claims }).token);
  t.not(signer.sign(claims).token, signer.sign({ ...claims, amount: 89 }).token);
});

t.test('an altered token is rejected', async (t) => {
  const { token } = signer.sign(claims);
  const [p, body, sig] = token.split('.');
  const values = JSON.parse(Buffer.from(body!, 'base64url').toString());
  values[2] = 8800; // amount
  const altered = `${p}.${Buffer.from(JSON.stringify(values)).toString('base64url')}.${sig}`;
  t.same(verifyToken(altered, keys), { ok: false, reason: 'bad_signature' });
});

t.test('a token forged with another key is rejected', async (t) => {
  const forger = tokenSigner(generateSigningKeyPem(), 'k1');
  t.same(verifyToken(forger.sign(claims).token, keys), { ok: false, reason: 'bad_signature' });
  const unknown = tokenSigner(generateSigningKeyPem(), 'k9');
  t.same(verifyToken(unknown.sign(claims).token, keys), { ok: false, reason: 'unknown_key' });
});

t.test('garbage is malformed, not a crash', async (t) => {
  for (const bad of ['', 'hb1', 'hb1.x.y', 'xx.e30.AA', `hb1.${Buffer.from('[1,2]').toString('base64url')}.AA`]) {
    t.same(verifyToken(bad, keys), { ok: false, reason: 'malformed' }, JSON.stringify(bad));
  }
});

t.test('only Ed25519 keys sign tokens', async (t) => {
  const { generateKeyPairSync } = await import('node:crypto');
  const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  t.throws(() => tokenSigner(rsa, 'r'), /Ed25519/);
});
