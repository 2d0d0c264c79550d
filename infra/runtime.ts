import { Redis } from 'ioredis';
import type pg from 'pg';
import type { Kafka } from 'kafkajs';
import { loadConfig, topicsOf, type Config, type Topics } from './config.ts';
import { pgPool, migrate, dropSchema } from './db.ts';
import { BatchingProducer, KafkaNotConnected } from './kafka-common.ts';
import { EventCodec } from '../schemas/codec.ts';
import { EventPublisher, topicOfType } from './publisher.ts';
import { logger, type Logger } from './log.ts';
import { KafkaLink } from './kafka-link.ts';

/** The connections a process needs, opened once and closed together. */
export interface Runtime {
  cfg: Config;
  topics: Topics;
  log: Logger;
  pool: pg.Pool;
  redis: Redis;
  kafka: Kafka;
  codec: EventCodec;
  producer: BatchingProducer;
  publisher: EventPublisher;
  /**
   * Whether Kafka's side (topics, schemas, producer) is connected. Connected from the start
   * unless the runtime was opened with `kafka: 'background'`.
   */
  kafkaLink: KafkaLink;
  close(): Promise<void>;
}

export function redisPrefix(cfg: Config): string {
  return cfg.namespace;
}

/**
 * Prepares a namespace: schema migrations, topics and schema registration. Idempotent, and
 * safe to run from several processes at once.
 */
export async function setupNamespace(cfg: Config): Promise<void> {
  await migrate(cfg.databaseUrl, cfg.namespace);
  await prepareKafka(await import('./kafka.ts'), cfg, new EventCodec(cfg.schemaRegistryUrl));
}

/** infra/kafka.ts, the Kafka client's side, imported on demand (see kafka-common.ts). */
type KafkaModule = typeof import('./kafka.ts');

/**
 * Kafka's side of a namespace: its topics, and its schemas registered (ids cached in `codec`).
 * `quick`: one attempt with few retries (the caller retries), rather than kafkajs's ~25 s of them.
 */
async function prepareKafka(k: KafkaModule, cfg: Config, codec: EventCodec, opts: { quick?: boolean } = {}): Promise<void> {
  const kafka = opts.quick ? k.kafkaClient(cfg, `${cfg.namespace}-setup`, { retries: 2 }, true) : k.kafkaClient(cfg, `${cfg.namespace}-setup`);
  const admin = kafka.admin();
  await admin.connect();
  try {
    const topics = topicsOf(cfg.namespace);
    await k.ensureTopics(admin, cfg, topics);
    await codec.registerAll((t) => topicOfType(topics, t));
  } finally {
    await admin.disconnect();
  }
}

export interface RuntimeOptions {
  /**
   * `wait` (the default): opening waits until the schemas are registered and the producer is
   * connected (a process that cannot work without Kafka: the processors). `background`: it
   * returns at once, and from `kafkaLink.start()` (the caller's) the namespace's topics, its
   * schemas and the producer are set up in the background, retried until they succeed; sends fail fast
   * (KafkaNotConnected) until then, and so does `kafka`. The API opens it so: it serves what
   * does not need Kafka during a Kafka (or registry) outage, even one that began before it
   * started; and it starts faster, as the Kafka and registry clients and Avro (about a third
   * of the files it loads) are loaded in the background too.
   */
  kafka?: 'wait' | 'background';
}

export async function openRuntime(name: string, overrides: Partial<Config> = {}, poolSize = 10, opts: RuntimeOptions = {}): Promise<Runtime> {
  const cfg = loadConfig(overrides);
  const topics = topicsOf(cfg.namespace);
  const log = logger({ svc: name, ns: cfg.namespace });
  const pool = pgPool(cfg.databaseUrl, cfg.namespace, poolSize, log);
  const redis = new Redis(cfg.redisUrl, { maxRetriesPerRequest: 2, enableOfflineQueue: true, lazyConnect: false });
  redis.on('error', (err) => log.warn('redis error', { err }));
  const codec = new EventCodec(cfg.schemaRegistryUrl);
  const producer = new BatchingProducer(cfg.produceLingerMs);
  let kafka: Kafka | null = null;
  let kafkaLink: KafkaLink;
  let closing = false;
  if (opts.kafka === 'background') {
    kafkaLink = KafkaLink.background(async () => {
      const k = await import('./kafka.ts');
      kafka ??= k.kafkaClient(cfg, `${cfg.namespace}-${name}`);
      await prepareKafka(k, cfg, codec, { quick: true });
      if (closing) return;
      await producer.open(k.ledgerProducer(kafka));
      // Closed while it connected: close() has already let go of the producer.
      if (closing) await producer.disconnect().catch(() => {});
    }, log);
  } else {
    const k = await import('./kafka.ts');
    kafka = k.kafkaClient(cfg, `${cfg.namespace}-${name}`);
    await codec.registerAll((t) => topicOfType(topics, t));
    await producer.open(k.ledgerProducer(kafka));
    kafkaLink = KafkaLink.connected();
  }
  const publisher = new EventPublisher(topics, codec, producer);
  return {
    cfg, topics, log, pool, redis, codec, producer, publisher, kafkaLink,
    get kafka(): Kafka {
      if (!kafka) throw new KafkaNotConnected('the Kafka client');
      return kafka;
    },
    async close() {
      closing = true;
      await kafkaLink.stop();
      await producer.disconnect().catch((err) => log.warn('producer close failed', { err }));
      redis.disconnect();
      await pool.end().catch(() => {});
    },
  };
}

/** Deletes everything a throwaway namespace (tests, benchmarks) created: topics, schema, Redis keys. */
export async function removeNamespace(rt: Runtime): Promise<void> {
  const admin = rt.kafka.admin();
  await admin.connect();
  try {
    const existing = new Set(await admin.listTopics());
    const mine = Object.values(rt.topics).filter((tp) => existing.has(tp));
    if (mine.length) await admin.deleteTopics({ topics: mine }).catch(() => {});
    const groups = (await admin.listGroups()).groups.map((g) => g.groupId).filter((g) => g.startsWith(`${rt.cfg.namespace}.`));
    if (groups.length) await admin.deleteGroups(groups).catch(() => {});
  } finally {
    await admin.disconnect();
  }
  await dropSchema(rt.cfg.databaseUrl, rt.cfg.namespace);
  await dropSchema(rt.cfg.databaseUrl, `${rt.cfg.namespace}_psp`); // the payment-provider simulator's books

  let cursor = '0';
  do {
    const [next, keys] = await rt.redis.scan(cursor, 'MATCH', `${rt.cfg.namespace}:*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length) await rt.redis.del(...keys);
  } while (cursor !== '0');
}
