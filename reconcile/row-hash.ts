/**
 * The row hash both sides of a projection comparison compute: Postgres's own
 * `hashtextextended(text, 0)` (Bob Jenkins' lookup3, `hash_bytes_extended` in
 * src/common/hashfn.c), reimplemented here so the audit and Postgres hash the same row text
 * to the same number without a cryptographic hash on either side. The audit hashes a few
 * rows per event, and md5 there was the largest single cost of a replay.
 *
 * It is not a defence against a forger (neither was a truncated md5): the digests find
 * accidental drift, and whoever can write the projection can rewrite its rows anyway.
 * Postgres hashes the bytes of text in a deterministic collation; on big-endian machines it
 * would hash differently (the test in test/reconcile/row-hash.test.ts compares with the
 * server).
 */

/** 2^48: the digests keep the low 48 bits of each hash, so sums of a million stay exact in a double. */
export const MOD = 2 ** 48;

/** SQL for the same number as rowHash(text). */
export const sqlRowHash = (sqlText: string) => `(hashtextextended(${sqlText}, 0) & ${MOD - 1})`;

let bytes = Buffer.alloc(1024);

/** UTF-8 of s into `bytes` (grown as needed), followed by 11 zero bytes; returns the length. */
function utf8(s: string): number {
  if (bytes.length < s.length * 3 + 11) bytes = Buffer.alloc(s.length * 3 + 11);
  const n = bytes.write(s, 0, 'utf8');
  for (let j = n; j < n + 11; j++) bytes[j] = 0;
  return n;
}

const rot = (x: number, k: number) => (x << k) | (x >>> (32 - k));

/** The low 48 bits of hashtextextended(s, 0). */
export function rowHash(s: string): number {
  let len = utf8(s);
  const k = bytes;
  let a = (0x9e3779b9 + len + 3923095) | 0;
  let b = a;
  let c = a;
  let i = 0;
  while (len >= 12) {
    a = (a + (k[i]! | (k[i + 1]! << 8) | (k[i + 2]! << 16) | (k[i + 3]! << 24))) | 0;
    b = (b + (k[i + 4]! | (k[i + 5]! << 8) | (k[i + 6]! << 16) | (k[i + 7]! << 24))) | 0;
    c = (c + (k[i + 8]! | (k[i + 9]! << 8) | (k[i + 10]! << 16) | (k[i + 11]! << 24))) | 0;
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
  a = (a + (k[i]! | (k[i + 1]! << 8) | (k[i + 2]! << 16) | (k[i + 3]! << 24))) | 0;
  b = (b + (k[i + 4]! | (k[i + 5]! << 8) | (k[i + 6]! << 16) | (k[i + 7]! << 24))) | 0;
  c = (c + ((k[i + 8]! << 8) | (k[i + 9]! << 16) | (k[i + 10]! << 24))) | 0;
  // final(a, b, c)
  c ^= b; c = (c - rot(b, 14)) | 0;
  a ^= c; a = (a - rot(c, 11)) | 0;
  b ^= a; b = (b - rot(a, 25)) | 0;
  c ^= b; c = (c - rot(b, 16)) | 0;
  a ^= c; a = (a - rot(c, 4)) | 0;
  b ^= a; b = (b - rot(a, 14)) | 0;
  c ^= b; c = (c - rot(b, 24)) | 0;
  // The result is (b << 32) | c; keep its low 48 bits.
  return (b & 0xffff) * 0x1_0000_0000 + (c >>> 0);
}
