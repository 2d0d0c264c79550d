import type { Logger } from './log.ts';

export interface KafkaLinkStatus {
  /** Topics ensured, schemas registered and the producer connected. */
  connected: boolean;
  /** When it connected (ISO), or null. */
  connectedAt: string | null;
  /** Attempts so far (1 for a process that waited for Kafka at start). */
  attempts: number;
  /** Why the last attempt failed, while not connected. */
  lastError: string | null;
}

/**
 * The Kafka side of a process that does not wait for Kafka to start (the API): its steps
 * (topics, schema registration, the producer's connection) are tried in the background,
 * again and again with backoff, until they all succeed once. What needs Kafka waits for
 * `ready` (the journal relay) or refuses fast while `connected` is false (KafkaNotConnected);
 * everything else serves meanwhile. Once connected, kafkajs's own reconnection takes over.
 */
export class KafkaLink {
  readonly ready: Promise<void>;
  private resolveReady!: () => void;
  private state: KafkaLinkStatus = { connected: false, connectedAt: null, attempts: 0, lastError: null };
  private stopped = false;
  private loop: Promise<void> | null = null;
  private wakeUp: (() => void) | null = null;

  private constructor(
    private readonly connect: (() => Promise<void>) | null,
    private readonly log: Logger | null,
    private readonly backoff = { initialMs: 250, maxMs: 2_000 },
  ) {
    this.ready = new Promise((resolve) => { this.resolveReady = resolve; });
  }

  /** A link whose steps already succeeded (a process that waited for Kafka at start). */
  static connected(): KafkaLink {
    const link = new KafkaLink(null, null);
    link.markConnected(1);
    return link;
  }

  /** A link that tries `connect` in the background, again and again until it succeeds once, from start(). */
  static background(connect: () => Promise<void>, log: Logger, backoff?: { initialMs: number; maxMs: number }): KafkaLink {
    return new KafkaLink(connect, log, backoff);
  }

  /**
   * Starts trying (idempotent). The API calls it once it listens: loading the Kafka and
   * registry clients is CPU its start would otherwise share.
   */
  start(): void {
    if (this.loop || !this.connect || this.stopped) return;
    this.loop = this.run();
  }

  get connected(): boolean {
    return this.state.connected;
  }

  status(): KafkaLinkStatus {
    return { ...this.state };
  }

  private markConnected(attempts: number): void {
    this.state = { connected: true, connectedAt: new Date().toISOString(), attempts, lastError: null };
    this.resolveReady();
  }

  private async run(): Promise<void> {
    const started = Date.now();
    let delay = this.backoff.initialMs;
    let lastLogged = 0;
    for (let attempt = 1; !this.stopped; attempt++) {
      try {
        await this.connect!();
        if (this.stopped) return;
        this.markConnected(attempt);
        if (attempt > 1) this.log!.info('connected to Kafka and the schema registry', { attempts: attempt, afterMs: Date.now() - started });
        return;
      } catch (err) {
        this.state = { ...this.state, attempts: attempt, lastError: (err as Error)?.message ?? String(err) };
        // The first failure, then one line every 30 s: an outage is not logged every second.
        if (Date.now() - lastLogged >= 30_000) {
          lastLogged = Date.now();
          this.log!.warn('Kafka or the schema registry is not reachable; serving without it and trying again in the background', { err, attempt });
        }
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delay);
        this.wakeUp = () => { clearTimeout(timer); resolve(); };
      });
      this.wakeUp = null;
      delay = Math.min(this.backoff.maxMs, delay * 2);
    }
  }

  /** Stops trying (an attempt in flight is awaited, at most `waitMs`). */
  async stop(waitMs = 5_000): Promise<void> {
    this.stopped = true;
    this.wakeUp?.();
    if (this.loop) await Promise.race([this.loop, new Promise((r) => setTimeout(r, waitMs).unref())]);
  }
}
