/** However long failures have gone on, a round is tried again within this (or the interval, if longer). */
const MAX_BACKOFF_MS = 10_000;

/**
 * Runs a round every `intervalMs`, one round at a time (the next is scheduled when the last
 * ends). Keepers use it. A failed round (a dependency down) is reported and tried again
 * after twice the interval, doubling with each failure in a row up to MAX_BACKOFF_MS, so an
 * outage is neither hammered nor logged every interval; the first success restores the pace.
 */
export class Periodic {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<unknown> | null = null;
  private failures = 0;

  constructor(private readonly round: () => Promise<unknown>, private readonly onError: (err: unknown) => void) {}

  start(intervalMs: number): void {
    const tick = () => {
      this.running = this.round()
        .then(() => { this.failures = 0; }, (err) => {
          this.failures++;
          this.onError(err);
        })
        .finally(() => {
          this.running = null;
          const delay = this.failures === 0 ? intervalMs : Math.min(Math.max(intervalMs, MAX_BACKOFF_MS), intervalMs * 2 ** this.failures);
          if (this.timer) this.timer = setTimeout(tick, delay);
        });
    };
    this.timer = setTimeout(tick, 0);
  }

  /** Stops scheduling, and waits for a round in progress. */
  async stop(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.running;
  }
}
