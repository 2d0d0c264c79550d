import { MOD } from './row-hash.ts';

/**
 * Per-bucket count and hash sum of a table's rows, as both the audit and Postgres compute
 * them (whole-log-check.ts). Sums are mod 2^48, so digests of parts of the log (the folds
 * of different partitions) add up to the digest of the whole.
 */
export const BUCKETS = 256;

/** The bucket of an id-keyed row: the id's first byte. */
export const idBucket = (id: string) => parseInt(id.slice(0, 2), 16);

export interface DigestData {
  n: number[];
  sum: number[];
}

export class Digest {
  readonly n: number[];
  readonly sum: number[];

  constructor(data?: DigestData) {
    this.n = data ? [...data.n] : new Array<number>(BUCKETS).fill(0);
    this.sum = data ? [...data.sum] : new Array<number>(BUCKETS).fill(0);
  }

  /** One row, by its hash (row-hash.ts). */
  add(bucket: number, hash: number): void {
    this.n[bucket]!++;
    this.sum[bucket] = (this.sum[bucket]! + hash) % MOD;
  }

  /** Adds another digest's rows to this one. */
  merge(other: DigestData): void {
    for (let b = 0; b < BUCKETS; b++) {
      this.n[b]! += other.n[b]!;
      this.sum[b] = (this.sum[b]! + other.sum[b]!) % MOD;
    }
  }

  toData(): DigestData {
    return { n: this.n, sum: this.sum };
  }

  /** All buckets' rows: the digest of the whole table. */
  total(): { n: number; sum: number } {
    let n = 0;
    let sum = 0;
    for (let b = 0; b < BUCKETS; b++) {
      n += this.n[b]!;
      sum = (sum + this.sum[b]!) % MOD;
    }
    return { n, sum };
  }

  /** Buckets where the other side (Postgres's rows: bucket, n, sum) differs. */
  differing(other: { b: number; n: number; s: string }[]): Set<number> {
    const theirs = new Map(other.map((r) => [r.b, r]));
    const out = new Set<number>();
    for (let b = 0; b < BUCKETS; b++) {
      const t = theirs.get(b);
      if ((t?.n ?? 0) !== this.n[b] || Number(t?.s ?? 0) !== this.sum[b]) out.add(b);
    }
    return out;
  }
}
