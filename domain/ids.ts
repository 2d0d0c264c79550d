import { hash } from 'node:crypto';

/**
 * Deterministic ids: the same business key always yields the same id, so a retried
 * request or a redelivered message is recognised as the same fact. Formatted as a UUID
 * (version nibble 8, "custom") so it fits uuid columns and reads like one.
 */
const VARIANT = '89ab';

export function deterministicId(kind: string, ...businessKey: string[]): string {
  // Length-prefix each part so ("a_b","c") and ("a","b_c") cannot collide.
  let input = kind;
  for (const part of businessKey) input += `\u0000${part.length}:${part}`;
  // One-shot hashing: the fold derives an id per creating event, so this is on every hot path.
  // The first 16 bytes of the digest, with the version nibble set to 8 and the variant bits to 10.
  const h = hash('sha256', input, 'hex');
  const variant = VARIANT[parseInt(h[16]!, 16) & 3]!;
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-8${h.slice(13, 16)}-${variant}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

// Character classes of the canonical spelling: 1 a lowercase hex digit, 2 the dash; and the
// class each of the 36 positions must have.
const CLASS = new Uint8Array(128);
for (const c of '0123456789abcdef') CLASS[c.charCodeAt(0)] = 1;
CLASS[45] = 2;
const SHAPE = Uint8Array.from('xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx', (c) => (c === '-' ? 2 : 1));

/**
 * The canonical UUID spelling (8-4-4-4-12 lowercase hex) of every id the ledger keys on.
 * A table lookup per character, not a regular expression: replay checks a few ids per event.
 */
export function isUuid(s: string): boolean {
  if (s.length !== 36) return false;
  for (let i = 0; i < 36; i++) {
    const c = s.charCodeAt(i);
    if (c > 127 || CLASS[c] !== SHAPE[i]) return false;
  }
  return true;
}
