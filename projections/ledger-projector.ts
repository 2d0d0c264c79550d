import type { Consumer } from 'kafkajs';
import type { Runtime } from '../infra/runtime.ts';
import { decodeOrDeadLetter } from '../streams/decode.ts';
import { applyBatch, OffsetGap } from './ledger-store.ts';

const CHUNK = 2000;

/**
 * Keeps the ledger projection (postings, balances, tokens, income) in Postgres from the
 * wallet and budget topics. Effectively once: effects and the partition's next offset
 * commit in one Postgres transaction, and on every (re)assignment the consumer seeks to
 * the offsets Postgres holds, so a restart resumes exactly where the projection stands.
 * Kafka's committed offsets are updated too, but only as a lag indicator.
 */
export class LedgerProjector {
  private consumer: Consumer | null = null;
  readonly name: string;
  projected = 0;

  constructor(private readonly rt: Runtime, opts: { groupId?: string } = {}) {
    this.name = opts.groupId ?? `${rt.cfg.namespace}.ledger-projector`;
  }

  async start(): Promise<void> {
    const { rt } = this;
    const consumer = rt.kafka.consumer({ groupId: this.name, maxBytesPerPartition: 4 << 20, sessionTimeout: 30_000, heartbeatInterval: 3_000 });
    this.consumer = consumer;
    await consumer.connect();
    await consumer.subscribe({ topics: [rt.topics.wallet, rt.topics.budget], fromBeginning: true });
    consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
      void this.seekToStored(payload.memberAssignment).catch((err) => rt.log.error('seek to stored offsets failed', { err }));
    });
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: 2,
      eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
        const source = { topic: batch.topic, partition: batch.partition, consumer: this.name };
        for (let i = 0; i < batch.messages.length && isRunning() && !isStale(); i += CHUNK) {
          const slice = batch.messages.slice(i, i + CHUNK);
          const items = await decodeOrDeadLetter(rt.codec, slice, source, rt.producer, rt.topics.deadLetter, rt.log);
          const client = await rt.pool.connect();
          let next: number;
          try {
            await client.query('begin');
            const res = await applyBatch(client, this.name, batch.topic, batch.partition, items);
            await client.query('commit');
            next = res.nextOffset;
            this.projected += res.applied;
          } catch (err) {
            await client.query('rollback').catch(() => {});
            if (err instanceof OffsetGap) {
              rt.log.warn('projection behind the fetch position; seeking back', { topic: batch.topic, partition: batch.partition, expected: err.expected, got: err.got });
              consumer.seek({ topic: batch.topic, partition: batch.partition, offset: String(err.expected) });
              return;
            }
            throw err;
          } finally {
            client.release();
          }
          resolveOffset(slice[slice.length - 1]!.offset);
          await consumer.commitOffsets([{ topic: batch.topic, partition: batch.partition, offset: String(next) }]).catch(() => {});
          await heartbeat();
        }
      },
    });
  }

  private async seekToStored(assignment: Record<string, number[]>): Promise<void> {
    if (!this.consumer) return;
    const { rows } = await this.rt.pool.query<{ topic: string; partition: number; next_offset: number }>(
      'select topic, partition, next_offset from consumer_offsets where consumer=$1', [this.name],
    );
    const stored = new Map(rows.map((r) => [`${r.topic}/${r.partition}`, r.next_offset]));
    for (const [topic, partitions] of Object.entries(assignment)) {
      for (const partition of partitions) {
        this.consumer.seek({ topic, partition, offset: String(stored.get(`${topic}/${partition}`) ?? 0) });
      }
    }
  }

  async stop(): Promise<void> {
    await this.consumer?.disconnect();
    this.consumer = null;
  }
}
