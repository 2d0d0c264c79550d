/**
 * Runs a round every `intervalMs`, one round at a time (the next is scheduled when the last
 * ends); a failed round is reported and the next one runs as usual. Keepers use it.
 */
export class Periodic {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<unknown> | null = null;

  constructor(private readonly round: () => Promise<unknown>, private readonly onError: (err: unknown) => void) {}

  start(intervalMs: number): void {
    const tick = () => {
      this.running = this.round()
        .catch(this.onError)
        .finally(() => {
          this.running = null;
          if (this.timer) this.timer = setTimeout(tick, intervalMs);
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
