import type { Consumer } from 'kafkajs';
import type { Runtime } from '../infra/runtime.ts';
import { creditFor } from '../domain/grants.ts';
import { runBatchConsumer } from './batch-consumer.ts';
import { SharedRateLimiter } from './rate-limiter.ts';

/**
 * Credits issued tokens at no more than the account system's capacity (CREDIT_RATE_PER_SEC,
 * shared by all instances). At-least-once: offsets are committed after the credits are
 * acknowledged, and a credit re-sent after a crash has the same event id, so the ledger
 * applies it once. A token is therefore never lost and never credited twice.
 */
export class CreditingProcessor {
  private consumer: Consumer | null = null;
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
        const issued = items.flatMap((it) => (it.event?.type === 'TokenIssued' ? [it.event.data] : []));
        let done = 0;
        while (done < issued.length) {
          const got = await this.limiter.take(issued.length - done, ctx.isActive);
          if (got === 0) return 'stop'; // the uncommitted rest is redelivered; its credits dedupe by id
          const now = Date.now();
          await this.rt.publisher.publishMany('TokenCredited', issued.slice(done, done + got).map((t) => creditFor(t, now)));
          done += got;
          this.credited += got;
          await ctx.heartbeat();
        }
        return { done: items[items.length - 1]!.offset + 1 };
      },
    });
  }

  async stop(): Promise<void> {
    await this.consumer?.disconnect();
    this.consumer = null;
  }
}
