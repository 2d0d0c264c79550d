import { hash } from 'node:crypto';

/**
 * Deterministic ids: the same business key always yields the same id, so a retried
 * request or a redelivered message is recognised as the same fact. Formatted as a UUID
 * (version nibble 8, "custom") so it fits uuid columns and reads like one.
 */
export function deterministicId(kind: string, ...businessKey: string[]): string {
  // Length-prefix each part so ("a_b","c") and ("a","b_c") cannot collide.
  let input = kind;
  for (const part of businessKey) input += `\u0000${part.length}:${part}`;
  // One-shot hashing: the fold derives an id per creating event, so this is on every hot path.
  const b = hash('sha256', input, 'buffer') as unknown as Buffer;
  b[6] = (b[6]! & 0x0f) | 0x80;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const hex = b.subarray(0, 16).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}
