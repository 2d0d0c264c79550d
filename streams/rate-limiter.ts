import type { Redis } from 'ioredis';

/**
 * A rate limit shared by every instance through Redis: at most ratePerSec/10 permits in
 * each 100 ms slice (or a finer slice when asked), so the flow to a downstream is even rather than bursting at the top of
 * each second. Instances take permits from the same counter, so adding instances never
 * raises the total rate.
 */
const TAKE = `
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local take = math.min(tonumber(ARGV[1]), tonumber(ARGV[2]) - used)
if take <= 0 then return 0 end
redis.call('INCRBY', KEYS[1], take)
redis.call('PEXPIRE', KEYS[1], 5000)
return take
`;

export const SLICE_MS = 100;

export class SharedRateLimiter {
  private readonly perSlice: number;
  readonly sliceMs: number;

  /**
   * `sliceMs` defaults to 100 ms; a downstream that counts its own capacity in short
   * windows is better served by finer slices (smaller bursts). A slice is lengthened when
   * the rate is too low to grant at least one permit in it.
   */
  constructor(
    private readonly redis: Redis,
    private readonly key: string,
    ratePerSec: number,
    private readonly now: () => number = Date.now,
    sliceMs = SLICE_MS,
  ) {
    if (!Number.isSafeInteger(ratePerSec) || ratePerSec <= 0) throw new RangeError('ratePerSec must be a positive integer');
    this.sliceMs = Math.max(sliceMs, Math.ceil(1000 / ratePerSec));
    this.perSlice = Math.floor((ratePerSec * this.sliceMs) / 1000);
  }

  /** Takes up to n permits from the current slice; returns how many it got (possibly 0). */
  async tryTake(n: number): Promise<number> {
    const slice = Math.floor(this.now() / this.sliceMs);
    return Number(await this.redis.eval(TAKE, 1, `${this.key}:${slice}`, String(n), String(this.perSlice)));
  }

  /** Waits until n permits are granted, slice by slice. */
  async take(n: number, isRunning: () => boolean = () => true): Promise<number> {
    let got = 0;
    while (got < n && isRunning()) {
      got += await this.tryTake(n - got);
      if (got < n) await new Promise((r) => setTimeout(r, this.sliceMs - (this.now() % this.sliceMs) + 1));
    }
    return got;
  }
}
