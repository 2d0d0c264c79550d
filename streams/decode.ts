import type { KafkaMessage } from 'kafkajs';
import type { LedgerEvent } from '../domain/events.ts';
import { UndecodableMessage, type EventCodec } from '../schemas/codec.ts';
import type { BatchingProducer } from '../infra/kafka.ts';
import type { Logger } from '../infra/log.ts';

export interface DecodedItem {
  offset: number;
  event: LedgerEvent | null;
}

/**
 * Decodes a batch. A message that cannot be decoded is copied, untouched, to the
 * dead-letter topic with headers saying where it came from and why, and its slot becomes
 * null so the consumer moves past it: one bad message never stops a partition.
 * A registry outage is not the message's fault and is thrown, so the batch is retried.
 */
export async function decodeOrDeadLetter(
  codec: EventCodec, messages: readonly KafkaMessage[], source: { topic: string; partition: number; consumer: string },
  producer: BatchingProducer, deadLetterTopic: string, log: Logger,
): Promise<DecodedItem[]> {
  await codec.prepare(messages.map((m) => m.value));
  const out = messages.map((m): DecodedItem & { error?: UndecodableMessage; raw: KafkaMessage } => {
    try {
      return { offset: Number(m.offset), event: codec.decodeLoaded(m.value), raw: m };
    } catch (err) {
      if (err instanceof UndecodableMessage) return { offset: Number(m.offset), event: null, error: err, raw: m };
      throw err;
    }
  });
  const dead = out.filter((o) => o.error);
  if (dead.length > 0) {
    await Promise.all(dead.map((d) => producer.send(deadLetterTopic, {
      key: d.raw.key?.toString('utf8') ?? `${source.topic}/${source.partition}`,
      value: d.raw.value ?? Buffer.alloc(0),
      headers: {
        'dlq-source-topic': source.topic,
        'dlq-source-partition': String(source.partition),
        'dlq-source-offset': String(d.offset),
        'dlq-consumer': source.consumer,
        'dlq-reason': d.error!.message,
      },
    })));
    for (const d of dead) log.warn('dead-lettered an undecodable message', { topic: source.topic, partition: source.partition, offset: d.offset, reason: d.error!.message });
  }
  return out.map(({ offset, event }) => ({ offset, event }));
}
