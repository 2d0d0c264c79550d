import type { EventMap, EventType } from '../domain/events.ts';
import type { EventCodec } from '../schemas/codec.ts';
import type { Topics } from './config.ts';
import type { BatchingProducer } from './kafka.ts';

/**
 * Where each event goes and what it is keyed by. Wallet events are keyed by user so one
 * user's events stay in order on one partition; budget events by activity.
 */
export function routeOf<K extends EventType>(topics: Topics, type: K, data: EventMap[K]): { topic: string; key: string } {
  switch (type) {
    case 'BudgetFunded':
      return { topic: topics.budget, key: data.activityId };
    case 'PayoutAttemptFailed':
      return { topic: topics.payouts, key: (data as EventMap['PayoutAttemptFailed']).withdrawalId };
    default:
      return { topic: topics.wallet, key: (data as EventMap['TokenIssued' | 'TokenCredited' | 'WithdrawalRequested' | 'PayoutSettled' | 'PayoutFailed' | 'PayoutDuplicateFlagged']).userId };
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
    const { topic, key } = routeOf(this.topics, type, data);
    const value = await this.codec.encode(topic, type, data);
    await this.producer.send(topic, { key, value, headers: { 'event-type': type, 'event-id': data.eventId } });
  }

  async publishMany<K extends EventType>(type: K, items: EventMap[K][]): Promise<void> {
    await Promise.all(items.map((d) => this.publish(type, d)));
  }
}
