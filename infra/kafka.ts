import { Kafka, Partitioners, logLevel, type ConfigResourceTypes, type Admin, type IHeaders, type Producer, type logCreator } from 'kafkajs';
import type { Config, Topics } from './config.ts';
import { logger } from './log.ts';

// Retries are bounded on purpose so a Kafka outage surfaces as a fast 503 instead of a hung
// request. kafkajs warns that this weakens its idempotence; it does not weaken ours, because
// every event id is deterministic and the ledger applies an id once.
const IGNORED = new Set(['Limiting retries for the idempotent producer may invalidate EoS guarantees']);

const kafkaLogs: logCreator = () => {
  const log = logger({ lib: 'kafkajs' });
  return ({ level, log: entry }) => {
    const { message, ...rest } = entry;
    if (IGNORED.has(message)) return;
    if (level <= logLevel.ERROR) log.error(message, rest);
    else if (level === logLevel.WARN) log.warn(message, rest);
  };
};

/** `quiet`: kafkajs logs nothing (a caller that retries and logs the failure itself, rate-limited). */
export function kafkaClient(cfg: Config, clientId: string, retry: { initialRetryTime?: number; retries?: number } = {}, quiet = false): Kafka {
  return new Kafka({
    clientId,
    brokers: cfg.kafkaBrokers,
    logLevel: quiet ? logLevel.NOTHING : logLevel.WARN,
    logCreator: kafkaLogs,
    retry: { initialRetryTime: 100, retries: 8, ...retry },
  });
}

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

/**
 * Creates the namespace's topics if missing. Partition counts come from configuration.
 * Message timestamps are the broker's append time: they only grow along a partition, so
 * "the events of a time range" (audits, the continuous reconciler) is an exact offset range,
 * and no event can appear later with a time inside a range already checked.
 */
const TOPIC_CONFIG = [
  { name: 'retention.ms', value: '-1' },
  { name: 'message.timestamp.type', value: 'LogAppendTime' },
];

// ConfigResourceTypes.TOPIC; kafkajs's enum is not reachable as an ES named export.
const TOPIC_RESOURCE = 2 as ConfigResourceTypes;

export async function ensureTopics(admin: Admin, cfg: Config, topics: Topics): Promise<void> {
  const all = [topics.wallet, topics.budget, topics.payouts, topics.deadLetter];
  const existing = new Set(await admin.listTopics());
  const wanted = all.filter((t) => !existing.has(t));
  if (wanted.length > 0) {
    await admin.createTopics({
      waitForLeaders: true,
      topics: wanted.map((topic) => ({ topic, numPartitions: cfg.partitions, replicationFactor: cfg.replicationFactor, configEntries: TOPIC_CONFIG })),
    });
  }
  const older = all.filter((t) => existing.has(t));
  if (older.length > 0) {
    // Topics created by an earlier version: bring their settings up to date. AlterConfigs replaces
    // a topic's settings as a whole; these are all the settings the ledger sets.
    await admin.alterConfigs({
      validateOnly: false,
      resources: older.map((name) => ({ type: TOPIC_RESOURCE, name, configEntries: TOPIC_CONFIG })),
    });
  }
}

/** A message with this header is partitioned by its value instead of its key (see routeOf). */
export const PARTITION_KEY_HEADER = 'partition-key';

/**
 * The Java client's murmur2 partitioner (a key lands on the same partition whichever client
 * wrote it), applied to the partition-key header when a message has one.
 */
export const ledgerPartitioner = () => {
  const murmur2 = Partitioners.DefaultPartitioner();
  return (args: Parameters<ReturnType<typeof Partitioners.DefaultPartitioner>>[0]) => {
    const pk = args.message.headers?.[PARTITION_KEY_HEADER];
    return murmur2(pk === undefined ? args : { ...args, message: { ...args.message, key: pk.toString() } });
  };
};

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
  private opened: boolean;

  constructor(
    readonly producer: Producer,
    private readonly lingerMs: number,
    private readonly maxBatch = 5000,
    opened = true,
  ) {
    this.opened = opened;
  }

  static async connect(kafka: Kafka, lingerMs: number): Promise<BatchingProducer> {
    const batching = BatchingProducer.unconnected(kafka, lingerMs);
    await batching.open();
    return batching;
  }

  /** A producer that refuses every send (KafkaNotConnected) until open() connected it. */
  static unconnected(kafka: Kafka, lingerMs: number): BatchingProducer {
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false, createPartitioner: ledgerPartitioner });
    return new BatchingProducer(producer, lingerMs, 5000, false);
  }

  async open(): Promise<void> {
    await this.producer.connect();
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
    await this.producer.disconnect();
  }
}
