import type { Consumer } from 'kafkajs';
import type { Runtime } from '../infra/runtime.ts';
import { runBatchConsumer, type ChunkOutcome, type RunningConsumer } from '../streams/batch-consumer.ts';
import type { DecodedItem } from '../streams/decode.ts';
import { applyBatch, OffsetGap } from './ledger-store.ts';

/**
 * Keeps the ledger projection (postings, balances, tokens) in Postgres from the wallet and
 * budget topics. Effectively once: effects and the partition's next offset commit in one
 * Postgres transaction, and on every (re)assignment the consumer seeks to the offsets
 * Postgres holds, so a restart resumes exactly where the projection stands. Kafka's
 * committed offsets are updated too, but only as a lag indicator.
 */
/** The projector's consumer group, also its name in consumer_offsets. */
export const projectorName = (namespace: string) => `${namespace}.ledger-projector`;

export class LedgerProjector {
  private consumer: RunningConsumer | null = null;
  readonly name: string;
  projected = 0;

  constructor(private readonly rt: Runtime, opts: { groupId?: string } = {}) {
    this.name = opts.groupId ?? projectorName(rt.cfg.namespace);
  }

  async start(): Promise<void> {
    const { rt } = this;
    this.consumer = await runBatchConsumer(rt, {
      groupId: this.name,
      topics: [rt.topics.wallet, rt.topics.budget],
      chunkSize: 5000,
      // Partitions are projected concurrently: while one waits on Postgres, another decodes.
      partitionsConsumedConcurrently: 4,
      maxBytesPerPartition: 4 << 20,
      handle: (items, ctx) => this.project(items, ctx.topic, ctx.partition),
      onAssignment: (consumer, assignment) => this.seekToStored(consumer, assignment),
    });
  }

  private async project(items: DecodedItem[], topic: string, partition: number): Promise<ChunkOutcome> {
    const client = await this.rt.pool.connect();
    try {
      await client.query('begin');
      const res = await applyBatch(client, this.name, topic, partition, items);
      await client.query('commit');
      this.projected += res.applied;
      return { done: res.nextOffset };
    } catch (err) {
      await client.query('rollback').catch(() => {});
      if (err instanceof OffsetGap) {
        this.rt.log.warn('projection behind the fetch position; seeking back', { topic, partition, expected: err.expected, got: err.got });
        return { seek: err.expected };
      }
      throw err;
    } finally {
      client.release();
    }
  }

  private async seekToStored(consumer: Consumer, assignment: Record<string, number[]>): Promise<void> {
    const { rows } = await this.rt.pool.query<{ topic: string; partition: number; next_offset: number }>(
      'select topic, partition, next_offset from consumer_offsets where consumer=$1', [this.name],
    );
    const stored = new Map(rows.map((r) => [`${r.topic}/${r.partition}`, r.next_offset]));
    for (const [topic, partitions] of Object.entries(assignment)) {
      for (const partition of partitions) {
        consumer.seek({ topic, partition, offset: String(stored.get(`${topic}/${partition}`) ?? 0) });
      }
    }
  }

  async stop(): Promise<void> {
    await this.consumer?.stop();
    this.consumer = null;
  }
}
