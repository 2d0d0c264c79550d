import type { EventMap, EventType, LedgerEvent } from '../domain/events.ts';
import type { EventCodec } from '../schemas/codec.ts';
import type { Topics } from './config.ts';
import { PARTITION_KEY_HEADER, type BatchingProducer } from './kafka-common.ts';

/**
 * Where each event goes and what it is keyed by. Wallet events are keyed by user so one
 * user's events stay in order on one partition; budget events by activity.
 *
 * A red packet's own events (created, claimed, refunded) are keyed by packet id and placed
 * on their sender's partition (`partitionKey`): they stay in order with each other, and the
 * sender's debit and refund stay in order with the sender's other wallet events, which the
 * funds rule and a replay depend on. A grabber's credit is the grabber's wallet event.
 */
export function routeOf<K extends EventType>(topics: Topics, type: K, data: EventMap[K]): { topic: string; key: string; partitionKey?: string } {
  switch (type) {
    case 'BudgetFunded':
      return { topic: topics.budget, key: data.activityId };
    case 'PayoutAttemptFailed':
      return { topic: topics.payouts, key: (data as EventMap['PayoutAttemptFailed']).withdrawalId };
    case 'PacketCreated':
    case 'PacketClaimed':
    case 'PacketRefunded': {
      const p = data as EventMap['PacketCreated' | 'PacketClaimed' | 'PacketRefunded'];
      return { topic: topics.wallet, key: p.packetId, partitionKey: p.senderId };
    }
    default:
      return { topic: topics.wallet, key: (data as EventMap['TokenIssued' | 'TokenCredited' | 'WithdrawalRequested' | 'PayoutSettled' | 'PayoutFailed' | 'PayoutDuplicateFlagged' | 'PacketShareCredited']).userId };
  }
}

export function topicOfType(topics: Topics, type: EventType): string {
  if (type === 'BudgetFunded') return topics.budget;
  if (type === 'PayoutAttemptFailed') return topics.payouts;
  return topics.wallet;
}

export class EventPublisher {
  constructor(
    private readonly topics: Topics,
    private readonly codec: EventCodec,
    private readonly producer: BatchingProducer,
  ) {}

  /** Resolves once the event is acknowledged by all in-sync replicas. */
  async publish<K extends EventType>(type: K, data: EventMap[K]): Promise<void> {
    const { topic, msg } = await this.encoded(type, data);
    await this.producer.send(topic, msg);
  }

  private async encoded<K extends EventType>(type: K, data: EventMap[K]) {
    const { topic, key, partitionKey } = routeOf(this.topics, type, data);
    const value = await this.codec.encode(topic, type, data);
    const headers = { 'event-type': type, 'event-id': data.eventId, ...(partitionKey === undefined ? {} : { [PARTITION_KEY_HEADER]: partitionKey }) };
    return { topic, msg: { key, value, headers } };
  }

  async publishEvent(event: LedgerEvent): Promise<void> {
    await this.publish(event.type, event.data as never);
  }

  /**
   * Produces events in the given order: every one is encoded first, then all are queued on
   * the producer together, which keeps the queue's order within each partition.
   */
  async publishInOrder(events: readonly LedgerEvent[]): Promise<void> {
    const encoded = await Promise.all(events.map((e) => this.encoded(e.type, e.data as never)));
    await Promise.all(encoded.map(({ topic, msg }) => this.producer.send(topic, msg)));
  }

  async publishMany<K extends EventType>(type: K, items: EventMap[K][]): Promise<void> {
    await Promise.all(items.map((d) => this.publish(type, d)));
  }
}
