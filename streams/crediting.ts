import type { Runtime } from '../infra/runtime.ts';
import { creditFor } from '../domain/grants.ts';
import { shareCreditFor } from '../domain/packets.ts';
import type { LedgerEvent } from '../domain/events.ts';
import { uncoveredToken } from '../domain/ledger.ts';
import { runBatchConsumer, type RunningConsumer } from './batch-consumer.ts';
import { SharedRateLimiter } from './rate-limiter.ts';

/** The credit an event calls for: an issued token, a grabbed red-packet share. */
function creditOf(event: LedgerEvent, now: number): LedgerEvent | null {
  if (event.type === 'TokenIssued') return { type: 'TokenCredited', data: creditFor(event.data, now) };
  if (event.type === 'PacketClaimed') return { type: 'PacketShareCredited', data: shareCreditFor(event.data, now) };
  return null;
}

/**
 * Credits issued tokens and grabbed red-packet shares (pending → available) at no more than the account system's capacity (CREDIT_RATE_PER_SEC,
 * shared by all instances). At-least-once: offsets are committed after the credits are
 * acknowledged, and a credit re-sent after a crash has the same event id, so the ledger
 * applies it once. A token is therefore never lost and never credited twice.
 */
export class CreditingProcessor {
  private consumer: RunningConsumer | null = null;
  readonly name: string;
  private readonly limiter: SharedRateLimiter;
  credited = 0;

  constructor(private readonly rt: Runtime, opts: { groupId?: string; ratePerSec?: number } = {}) {
    this.name = opts.groupId ?? `${rt.cfg.namespace}.crediting`;
    this.limiter = new SharedRateLimiter(rt.redis, `${rt.cfg.namespace}:rate:crediting`, opts.ratePerSec ?? rt.cfg.creditRatePerSec);
  }

  async start(): Promise<void> {
    this.consumer = await runBatchConsumer(this.rt, {
      groupId: this.name,
      topics: [this.rt.topics.wallet],
      chunkSize: 500,
      partitionsConsumedConcurrently: 2,
      maxBytesPerPartition: 1 << 20,
      handle: async (items, ctx) => {
        const events = items.flatMap((it) => (it.event ? [it.event] : []));
        const accepted = await this.acceptedClaims(events, ctx);
        if (accepted === null) return 'stop';
        // A token the fold refuses for its budget slice (I10) is not credited: the rule reads
        // the event alone, so no need to wait for the projection as for claims.
        const owed = events.filter((e) => (e.type === 'PacketClaimed' ? accepted.has(e.data.eventId) : e.type === 'TokenIssued' && uncoveredToken(e.data) === null));
        let done = 0;
        while (done < owed.length) {
          const got = await this.limiter.take(owed.length - done, ctx.isActive);
          if (got === 0) return 'stop'; // the uncommitted rest is redelivered; its credits dedupe by id
          const now = Date.now();
          await Promise.all(owed.slice(done, done + got).map((e) => this.rt.publisher.publishEvent(creditOf(e, now)!)));
          done += got;
          this.credited += got;
          await ctx.heartbeat();
        }
        return { done: items[items.length - 1]!.offset + 1 };
      },
    });
  }

  /**
   * The claims of these events that the ledger accepted. A claim the fold refused (a share
   * already taken, a packet already refunded) must not be credited: its credit, on the
   * grabber's partition, could not see the refusal and would move money from nothing. So
   * claims are credited only once projected, and only if projected as accepted. Waits for
   * the projection; null when the consumer stops first.
   */
  private async acceptedClaims(events: LedgerEvent[], ctx: { isActive(): boolean; heartbeat(): Promise<void> }): Promise<Set<string> | null> {
    const claims = events.flatMap((e) => (e.type === 'PacketClaimed' ? [e.data] : []));
    if (claims.length === 0) return new Set();
    for (;;) {
      const { rows } = await this.rt.pool.query<{ event_id: string; projected: boolean; accepted: boolean }>(
        `select q.event_id::text, exists(select 1 from ledger_events e where e.event_id = q.event_id) as projected,
                exists(select 1 from packet_claims c where c.packet_id = q.packet_id and c.user_id = q.user_id) as accepted
           from unnest($1::uuid[], $2::uuid[], $3::text[]) as q(event_id, packet_id, user_id)`,
        [claims.map((c) => c.eventId), claims.map((c) => c.packetId), claims.map((c) => c.userId)],
      );
      if (rows.every((r) => r.projected)) return new Set(rows.filter((r) => r.accepted).map((r) => r.event_id));
      if (!ctx.isActive()) return null;
      await ctx.heartbeat();
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async stop(): Promise<void> {
    await this.consumer?.stop();
    this.consumer = null;
  }
}
