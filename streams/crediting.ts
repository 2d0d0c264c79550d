import type { Consumer } from 'kafkajs';
import type { Runtime } from '../infra/runtime.ts';
import type { TokenCredited, TokenIssued } from '../domain/events.ts';
import { creditEventIdFor } from '../domain/grants.ts';
import { decodeOrDeadLetter } from './decode.ts';
import { SharedRateLimiter } from './rate-limiter.ts';

export function creditFor(issued: TokenIssued, now: number): TokenCredited {
  return {
    eventId: creditEventIdFor(issued.tokenId),
    occurredAt: now,
    activityId: issued.activityId,
    traceId: issued.traceId,
    tokenId: issued.tokenId,
    userId: issued.userId,
    amount: issued.amount,
    currency: issued.currency,
  };
}

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
    const { rt } = this;
    const consumer = rt.kafka.consumer({ groupId: this.name, maxBytesPerPartition: 1 << 20, sessionTimeout: 30_000 });
    this.consumer = consumer;
    await consumer.connect();
    await consumer.subscribe({ topics: [rt.topics.wallet], fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: 2,
      eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
        const source = { topic: batch.topic, partition: batch.partition, consumer: this.name };
        const CHUNK = 500;
        for (let i = 0; i < batch.messages.length && isRunning() && !isStale(); i += CHUNK) {
          const slice = batch.messages.slice(i, i + CHUNK);
          const items = await decodeOrDeadLetter(rt.codec, slice, source, rt.producer, rt.topics.deadLetter, rt.log);
          const issued = items.flatMap((it) => (it.event?.type === 'TokenIssued' ? [it.event.data] : []));
          let done = 0;
          while (done < issued.length) {
            const got = await this.limiter.take(issued.length - done, () => isRunning() && !isStale());
            if (got === 0) return; // stopping or rebalancing: the uncommitted rest is redelivered
            const now = Date.now();
            await rt.publisher.publishMany('TokenCredited', issued.slice(done, done + got).map((t) => creditFor(t, now)));
            done += got;
            this.credited += got;
            await heartbeat();
          }
          const last = slice[slice.length - 1]!.offset;
          resolveOffset(last);
          await consumer.commitOffsets([{ topic: batch.topic, partition: batch.partition, offset: String(Number(last) + 1) }]);
        }
      },
    });
  }

  async stop(): Promise<void> {
    await this.consumer?.disconnect();
    this.consumer = null;
  }
}
