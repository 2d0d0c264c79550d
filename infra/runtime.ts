import { Redis } from 'ioredis';
import type pg from 'pg';
import type { Kafka } from 'kafkajs';
import { loadConfig, topicsOf, type Config, type Topics } from './config.ts';
import { pgPool, migrate, dropSchema } from './db.ts';
import { kafkaClient, ensureTopics, BatchingProducer } from './kafka.ts';
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
  await prepareKafka(cfg, new EventCodec(cfg.schemaRegistryUrl));
}

/**
 * Kafka's side of a namespace: its topics, and its schemas registered (ids cached in `codec`).
 * `quick`: one attempt with few retries (the caller retries), rather than kafkajs's ~25 s of them.
 */
async function prepareKafka(cfg: Config, codec: EventCodec, opts: { quick?: boolean } = {}): Promise<void> {
  const kafka = opts.quick ? kafkaClient(cfg, `${cfg.namespace}-setup`, { retries: 2 }, true) : kafkaClient(cfg, `${cfg.namespace}-setup`);
  const admin = kafka.admin();
  await admin.connect();
  try {
    const topics = topicsOf(cfg.namespace);
    await ensureTopics(admin, cfg, topics);
    await codec.registerAll((t) => topicOfType(topics, t));
  } finally {
    await admin.disconnect();
  }
}

export interface RuntimeOptions {
  /**
   * `wait` (the default): opening waits until the schemas are registered and the producer is
   * connected (a process that cannot work without Kafka: the processors). `background`: it
   * returns at once, and the namespace's topics, its schemas and the producer are set up in
   * the background, retried until they succeed (`kafkaLink`); sends fail fast
   * (KafkaNotConnected) until then. The API opens it so: it serves what does not need Kafka
   * during a Kafka (or registry) outage, even one that began before it started.
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
  const kafka = kafkaClient(cfg, `${cfg.namespace}-${name}`);
  const codec = new EventCodec(cfg.schemaRegistryUrl);
  let producer: BatchingProducer;
  let kafkaLink: KafkaLink;
  let closing = false;
  if (opts.kafka === 'background') {
    producer = BatchingProducer.unconnected(kafka, cfg.produceLingerMs);
    kafkaLink = KafkaLink.background(async () => {
      await prepareKafka(cfg, codec, { quick: true });
      if (closing) return;
      await producer.open();
      // Closed while it connected: close() has already let go of the producer.
      if (closing) await producer.disconnect().catch(() => {});
    }, log);
  } else {
    await codec.registerAll((t) => topicOfType(topics, t));
    producer = await BatchingProducer.connect(kafka, cfg.produceLingerMs);
    kafkaLink = KafkaLink.connected();
  }
  const publisher = new EventPublisher(topics, codec, producer);
  return {
    cfg, topics, log, pool, redis, kafka, codec, producer, publisher, kafkaLink,
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
