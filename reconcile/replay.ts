import type { Kafka } from 'kafkajs';
import type { LedgerEvent } from '../domain/events.ts';
import { UndecodableMessage, type EventCodec } from '../schemas/codec.ts';

export interface ReplayedEvent {
  topic: string;
  partition: number;
  offset: number;
  event: LedgerEvent;
}

/**
 * Reads topics from the beginning up to their end offsets as of the start of the replay,
 * with a throwaway consumer group, and hands every event to `onEvent` in per-partition
 * order. Undecodable messages are counted, not fatal: they are in the dead-letter topic.
 */
export async function replayTopics(
  kafka: Kafka, codec: EventCodec, topics: string[], onEvent: (e: ReplayedEvent) => void,
): Promise<{ events: number; undecodable: number }> {
  const admin = kafka.admin();
  await admin.connect();
  const remaining = new Map<string, number>(); // "topic/partition" -> end offset
  try {
    for (const topic of topics) {
      for (const p of await admin.fetchTopicOffsets(topic)) {
        if (Number(p.high) > Number(p.low)) remaining.set(`${topic}/${p.partition}`, Number(p.high));
      }
    }
  } finally {
    await admin.disconnect();
  }
  let events = 0;
  let undecodable = 0;
  if (remaining.size === 0) return { events, undecodable };

  const consumer = kafka.consumer({ groupId: `replay-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}`, maxBytesPerPartition: 8 << 20 });
  await consumer.connect();
  await consumer.subscribe({ topics, fromBeginning: true });
  let failure: unknown = null;
  await new Promise<void>((resolve) => {
    void consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch, isRunning }) => {
        const key = `${batch.topic}/${batch.partition}`;
        const end = remaining.get(key);
        if (end === undefined) return;
        try {
          for (const m of batch.messages) {
            if (!isRunning()) return;
            const offset = Number(m.offset);
            if (offset >= end) break;
            try {
              onEvent({ topic: batch.topic, partition: batch.partition, offset, event: await codec.decode(m.value) });
              events++;
            } catch (err) {
              if (!(err instanceof UndecodableMessage)) throw err;
              undecodable++;
            }
            if (offset === end - 1) {
              remaining.delete(key);
              if (remaining.size === 0) resolve();
              break;
            }
          }
        } catch (err) {
          failure = err;
          resolve();
        }
      },
    });
  });
  await consumer.disconnect();
  if (failure) throw failure;
  return { events, undecodable };
}
