import type { Consumer } from 'kafkajs';
import type { Runtime } from '../infra/runtime.ts';
import { decodeOrDeadLetter, type DecodedItem } from './decode.ts';

export interface ChunkContext {
  topic: string;
  partition: number;
  /** False once the consumer is stopping or the batch went stale in a rebalance. */
  isActive(): boolean;
  heartbeat(): Promise<void>;
}

/**
 * What a handler did with a chunk: its next offset to record ("done"), a position to re-read
 * from ("seek"), or nothing, because the consumer is stopping ("stop"). After "seek" or
 * "stop" the rest of the batch is left unread and is delivered again.
 */
export type ChunkOutcome = { done: number } | { seek: number } | 'stop';

export interface BatchConsumerOptions {
  groupId: string;
  topics: string[];
  chunkSize: number;
  partitionsConsumedConcurrently: number;
  maxBytesPerPartition: number;
  handle(items: DecodedItem[], ctx: ChunkContext): Promise<ChunkOutcome>;
  /** Called on every (re)assignment, e.g. to seek to offsets stored elsewhere. */
  onAssignment?(consumer: Consumer, assignment: Record<string, number[]>): Promise<void>;
}

/**
 * The one consumer loop every processor uses: batches in chunks, undecodable messages
 * dead-lettered (processing continues), Kafka offsets committed only after a chunk's
 * handler finished, and a heartbeat after each chunk.
 */
export async function runBatchConsumer(rt: Runtime, opts: BatchConsumerOptions): Promise<Consumer> {
  const consumer = rt.kafka.consumer({ groupId: opts.groupId, maxBytesPerPartition: opts.maxBytesPerPartition, sessionTimeout: 30_000, heartbeatInterval: 3_000 });
  await consumer.connect();
  await consumer.subscribe({ topics: opts.topics, fromBeginning: true });
  if (opts.onAssignment) {
    const onAssignment = opts.onAssignment;
    consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
      void onAssignment(consumer, payload.memberAssignment).catch((err) => rt.log.error('assignment hook failed', { group: opts.groupId, err }));
    });
  }
  await consumer.run({
    autoCommit: false,
    eachBatchAutoResolve: false,
    partitionsConsumedConcurrently: opts.partitionsConsumedConcurrently,
    eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
      const source = { topic: batch.topic, partition: batch.partition, consumer: opts.groupId };
      const ctx: ChunkContext = { topic: batch.topic, partition: batch.partition, isActive: () => isRunning() && !isStale(), heartbeat };
      for (let i = 0; i < batch.messages.length && ctx.isActive(); i += opts.chunkSize) {
        const slice = batch.messages.slice(i, i + opts.chunkSize);
        const items = await decodeOrDeadLetter(rt.codec, slice, source, rt.producer, rt.topics.deadLetter, rt.log);
        const outcome = await opts.handle(items, ctx);
        if (outcome === 'stop') return;
        if ('seek' in outcome) {
          consumer.seek({ topic: batch.topic, partition: batch.partition, offset: String(outcome.seek) });
          return;
        }
        resolveOffset(slice[slice.length - 1]!.offset);
        await consumer.commitOffsets([{ topic: batch.topic, partition: batch.partition, offset: String(outcome.done) }]);
        await heartbeat();
      }
    },
  });
  return consumer;
}
