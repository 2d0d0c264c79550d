import type { IHeaders, Producer } from 'kafkajs';

// What every process shares about Kafka without loading kafkajs (only its types): the API
// serves before its Kafka side is loaded and connected (infra/kafka-link.ts), so loading the
// Kafka client, the registry client and Avro waits until then (infra/kafka.ts,
// schemas/codec.ts are imported on demand).

/** A message with this header is partitioned by its value instead of its key (see routeOf). */
export const PARTITION_KEY_HEADER = 'partition-key';

/**
 * Kafka is not connected yet: a process that starts without waiting for it (the API) has
 * not reached the broker, or the schema registry, since it started (infra/kafka-link.ts).
 * Like a kafkajs error, it is a dependency outage (503), never a bug.
 */
export class KafkaNotConnected extends Error {
  override readonly name = 'KafkaNotConnected';
  constructor(what = 'Kafka') {
    super(`${what}: not connected to Kafka and the schema registry yet`);
  }
}

/** A Kafka client's error (kafkajs's own, or KafkaNotConnected): the broker, not the request. */
export function isKafkaError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  return err.name.startsWith('KafkaJS') || err instanceof KafkaNotConnected;
}

export interface OutgoingMessage {
  key: string;
  value: Buffer;
  headers?: IHeaders;
}

/**
 * Micro-batching over an idempotent, acks=all producer. Callers await their own message;
 * messages that arrive while a batch is in flight are sent together in the next one, so
 * under load the batch grows instead of the request rate collapsing to one send each.
 * Only one batch is in flight at a time: the idempotent producer's sequence numbers then
 * stay in order without relying on kafkajs's handling of concurrent requests.
 */
export class BatchingProducer {
  private queue: { topic: string; msg: OutgoingMessage; resolve: () => void; reject: (e: unknown) => void }[] = [];
  private inFlight: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private client: Producer | null = null;
  private opened = false;

  /** Refuses every send (KafkaNotConnected) until open() connected a producer. */
  constructor(
    private readonly lingerMs: number,
    private readonly maxBatch = 5000,
  ) {}

  /** The kafkajs producer (infra/kafka.ts: ledgerProducer). */
  get producer(): Producer {
    if (!this.client) throw new KafkaNotConnected('the producer');
    return this.client;
  }

  /** Connects `producer` (idempotent, the ledger's partitioner: infra/kafka.ts ledgerProducer) and sends through it. */
  async open(producer: Producer): Promise<void> {
    this.client = producer;
    await producer.connect();
    this.opened = true;
  }

  get isOpen(): boolean {
    return this.opened;
  }

  send(topic: string, msg: OutgoingMessage): Promise<void> {
    // Fails at once rather than at kafkajs's "disconnected", and never queues behind a connect.
    if (!this.opened) return Promise.reject(new KafkaNotConnected('the producer'));
    return new Promise((resolve, reject) => {
      this.queue.push({ topic, msg, resolve, reject });
      this.schedule();
    });
  }

  sendMany(topic: string, msgs: OutgoingMessage[]): Promise<void> {
    return Promise.all(msgs.map((m) => this.send(topic, m))).then(() => undefined);
  }

  private schedule(): void {
    if (this.inFlight || this.timer) return;
    if (this.queue.length >= this.maxBatch || this.lingerMs === 0) {
      this.flush();
    } else {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.flush();
      }, this.lingerMs);
    }
  }

  private flush(): void {
    if (this.inFlight || this.queue.length === 0) return;
    const batch = this.queue.splice(0, this.maxBatch);
    const byTopic = new Map<string, OutgoingMessage[]>();
    for (const item of batch) {
      const list = byTopic.get(item.topic) ?? [];
      list.push(item.msg);
      byTopic.set(item.topic, list);
    }
    this.inFlight = this.producer
      .sendBatch({ acks: -1, topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })) })
      .then(
        () => batch.forEach((b) => b.resolve()),
        (err) => batch.forEach((b) => b.reject(err)),
      )
      .finally(() => {
        this.inFlight = null;
        if (this.queue.length > 0) this.flush();
      });
  }

  async disconnect(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.flush();
    while (this.inFlight) await this.inFlight;
    this.opened = false;
    await this.client?.disconnect();
  }
}
