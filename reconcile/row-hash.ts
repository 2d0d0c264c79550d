import type { Posting, TokenRecord } from '../domain/ledger.ts';
import type { WithdrawalRecord } from '../domain/withdrawals.ts';

/**
 * The row hashes both sides of a projection comparison compute: the audit in TypeScript, over
 * what its fold produced, and Postgres in SQL, over the projection's rows. Each is a chain of
 * Postgres's own hash functions (Bob Jenkins' lookup3, `hash_bytes_extended` in
 * src/common/hashfn.c): the row's id is hashed as a uuid, seeded with one of its integers,
 * and each text field is then hashed with the hash so far as its seed. Postgres computes that
 * without building any text per row, which is what made its side of a whole-log audit cheap;
 * the audit hashes the id's 16 bytes and a few short strings.
 *
 * It is not a defence against a forger: the digests find accidental drift, and whoever can
 * write the projection can rewrite its rows anyway. Postgres hashes the bytes of text in a
 * deterministic collation and reads lookup3's words in the machine's byte order; on a
 * big-endian server it would hash differently (test/reconcile/row-hash.test.ts compares the
 * two sides on the server).
 *
 * Each table's hash is written twice below, once per side, next to each other: the pairs
 * must stay alike, and the test checks every pair against the server.
 */

/** 2^48: the digests keep the low 48 bits of each hash, so sums of a million stay exact in a double. */
export const MOD = 2 ** 48;
const MASK = MOD - 1;

// The hash being built (Postgres's int8 result: hi is lookup3's b, lo its c). The functions
// below chain through it instead of returning pairs, so hashing a row allocates nothing.
let hi = 0;
let lo = 0;
/** Text being hashed, as UTF-8 (grown as needed). */
let bytes = Buffer.alloc(1024);
/** The last uuid hashed, as its 16 bytes: a posting's legs hash their event's id again. */
const idBytes = Buffer.alloc(16 + 11);
let lastId = '';

const rot = (x: number, k: number) => (x << k) | (x >>> (32 - k));
const word = (k: Buffer, i: number) => k[i]! | (k[i + 1]! << 8) | (k[i + 2]! << 16) | (k[i + 3]! << 24);

/** hash_bytes_extended(k[0..len), seed = the hash so far), into the hash so far. `k` has 11 zero bytes after len. */
function hashBytes(k: Buffer, len: number): void {
  let a = (0x9e3779b9 + len + 3923095) | 0;
  let b = a;
  let c = a;
  if (hi !== 0 || lo !== 0) {
    a = (a + hi) | 0;
    b = (b + lo) | 0;
    // mix(a, b, c)
    a = (a - c) | 0; a ^= rot(c, 4); c = (c + b) | 0;
    b = (b - a) | 0; b ^= rot(a, 6); a = (a + c) | 0;
    c = (c - b) | 0; c ^= rot(b, 8); b = (b + a) | 0;
    a = (a - c) | 0; a ^= rot(c, 16); c = (c + b) | 0;
    b = (b - a) | 0; b ^= rot(a, 19); a = (a + c) | 0;
    c = (c - b) | 0; c ^= rot(b, 4); b = (b + a) | 0;
  }
  let i = 0;
  while (len >= 12) {
    a = (a + word(k, i)) | 0;
    b = (b + word(k, i + 4)) | 0;
    c = (c + word(k, i + 8)) | 0;
    // mix(a, b, c)
    a = (a - c) | 0; a ^= rot(c, 4); c = (c + b) | 0;
    b = (b - a) | 0; b ^= rot(a, 6); a = (a + c) | 0;
    c = (c - b) | 0; c ^= rot(b, 8); b = (b + a) | 0;
    a = (a - c) | 0; a ^= rot(c, 16); c = (c + b) | 0;
    b = (b - a) | 0; b ^= rot(a, 19); a = (a + c) | 0;
    c = (c - b) | 0; c ^= rot(b, 4); b = (b + a) | 0;
    i += 12;
    len -= 12;
  }
  // The last 0–11 bytes, read from a zero tail: the same sums as lookup3's fall-through switch.
  // The lowest byte of c is left out (lookup3 reserves it for the length, already in the seed).
  a = (a + word(k, i)) | 0;
  b = (b + word(k, i + 4)) | 0;
  c = (c + ((k[i + 8]! << 8) | (k[i + 9]! << 16) | (k[i + 10]! << 24))) | 0;
  // final(a, b, c)
  c ^= b; c = (c - rot(b, 14)) | 0;
  a ^= c; a = (a - rot(c, 11)) | 0;
  b ^= a; b = (b - rot(a, 25)) | 0;
  c ^= b; c = (c - rot(b, 16)) | 0;
  a ^= c; a = (a - rot(c, 4)) | 0;
  b ^= a; b = (b - rot(a, 14)) | 0;
  c ^= b; c = (c - rot(b, 24)) | 0;
  hi = b;
  lo = c;
}

/** Starts a hash from an int8 (SQL: the integer itself, as a seed). */
function seed(n: number): void {
  hi = Math.floor(n / 0x1_0000_0000) | 0;
  lo = n | 0;
}

/** SQL: `# n` (int8 xor). */
function xor(n: number): void {
  hi ^= Math.floor(n / 0x1_0000_0000) | 0;
  lo ^= n | 0;
}

const HEX = new Int8Array(128).fill(-1);
for (let d = 0; d < 16; d++) {
  HEX['0123456789abcdef'.charCodeAt(d)] = d;
  HEX['0123456789ABCDEF'.charCodeAt(d)] = d;
}

/** SQL: uuid_hash_extended(id, seed = the hash so far). The id is a validated UUID (domain/ids.ts). */
function uuid(id: string): void {
  if (id !== lastId) {
    let j = 0;
    for (let i = 0; i < 16; i++) {
      if (id.charCodeAt(j) === 45) j++; // '-'
      idBytes[i] = (HEX[id.charCodeAt(j)]! << 4) | HEX[id.charCodeAt(j + 1)]!;
      j += 2;
    }
    lastId = id;
  }
  hashBytes(idBytes, 16);
}

/** SQL: hashtextextended(s, seed = the hash so far). */
function text(s: string): void {
  if (bytes.length < s.length * 3 + 11) bytes = Buffer.alloc(s.length * 3 + 11);
  // ASCII, the usual case, is copied as it is; anything else goes through the UTF-8 encoder.
  let n = s.length;
  let ascii = 0;
  for (let i = 0; i < n; i++) ascii |= bytes[i] = s.charCodeAt(i);
  if (ascii > 0x7f) n = bytes.write(s, 0, 'utf8');
  for (let i = n; i < n + 11; i++) bytes[i] = 0;
  hashBytes(bytes, n);
}

/** The low 48 bits of the hash so far. */
const low48 = () => (hi & 0xffff) * 0x1_0000_0000 + (lo >>> 0);

/** SQL of a chain: `start`, then each text hashed with the hash so far as its seed; low 48 bits. */
const chainSql = (start: string, texts: string[]) => `(${texts.reduce((s, t) => `hashtextextended(${t}, ${s})`, start)} & ${MASK})`;

/** hashtextextended(s, 0): exposed for the test of the primitive, and to bucket accounts. */
export function textHash(s: string): number {
  seed(0);
  text(s);
  return low48();
}
export const textHashSql = (sqlText: string) => chainSql('0::int8', [sqlText]);

// One pair per kind of row. SQL aliases: ledger_events e, postings p, tokens t, withdrawals w,
// account_balances (none).

export function eventHash(eventId: string): number {
  seed(0);
  uuid(eventId);
  return low48();
}
export const EVENT_HASH = chainSql('uuid_hash_extended(e.event_id, 0)', []);

export function postingHash(eventId: string, leg: number, p: Posting): number {
  seed(leg);
  uuid(eventId);
  xor(p.amount);
  text(p.account);
  text(p.currency);
  return low48();
}
export const POSTING_HASH = chainSql('(uuid_hash_extended(p.event_id, p.leg) # p.amount)', ['p.account', 'p.currency']);

export function tokenHash(t: TokenRecord): number {
  seed(t.amount);
  uuid(t.tokenId);
  text(t.userId);
  text(t.activityId);
  text(t.sceneId);
  text(t.orderNo);
  text(t.currency);
  return low48();
}
export const TOKEN_HASH = chainSql('uuid_hash_extended(t.token_id, t.amount)', ['t.user_id', 't.activity_id', 't.scene_id', 't.order_no', 't.currency']);

/** A token's status, hashed apart from its row: a range audit compares it at the range's end. */
export function tokenStateHash(t: TokenRecord): number {
  seed(0);
  uuid(t.tokenId);
  text(t.status);
  return low48();
}
export const TOKEN_STATE_HASH = chainSql('uuid_hash_extended(t.token_id, 0)', ['t.status']);

export function withdrawalHash(w: WithdrawalRecord): number {
  seed(w.amount);
  uuid(w.withdrawalId);
  text(w.userId);
  text(w.currency);
  return low48();
}
export const WITHDRAWAL_HASH = chainSql('uuid_hash_extended(w.withdrawal_id, w.amount)', ['w.user_id', 'w.currency']);

export function withdrawalStateHash(w: WithdrawalRecord): number {
  seed(0);
  uuid(w.withdrawalId);
  text(w.status);
  text(w.providerRef ?? '');
  return low48();
}
export const WITHDRAWAL_STATE_HASH = chainSql('uuid_hash_extended(w.withdrawal_id, 0)', ['w.status', `coalesce(w.provider_ref, '')`]);

export function balanceHash(account: string, currency: string, balance: number): number {
  seed(balance);
  text(account);
  text(currency);
  return low48();
}
export const BALANCE_HASH = chainSql('balance', ['account', 'currency']);
