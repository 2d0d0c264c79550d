import { Redis } from 'ioredis';
import type pg from 'pg';
import type { Kafka } from 'kafkajs';
import { loadConfig, topicsOf, type Config, type Topics } from './config.ts';
import { pgPool, migrate, dropSchema } from './db.ts';
import { kafkaClient, ensureTopics, BatchingProducer } from './kafka.ts';
import { EventCodec } from '../schemas/codec.ts';
import { EventPublisher, topicOfType } from './publisher.ts';
import { logger, type Logger } from './log.ts';

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
  const kafka = kafkaClient(cfg, `${cfg.namespace}-setup`);
  const admin = kafka.admin();
  await admin.connect();
  try {
    const topics = topicsOf(cfg.namespace);
    await ensureTopics(admin, cfg, topics);
    await new EventCodec(cfg.schemaRegistryUrl).registerAll((t) => topicOfType(topics, t));
  } finally {
    await admin.disconnect();
  }
}

export async function openRuntime(name: string, overrides: Partial<Config> = {}, poolSize = 10): Promise<Runtime> {
  const cfg = loadConfig(overrides);
  const topics = topicsOf(cfg.namespace);
  const log = logger({ svc: name, ns: cfg.namespace });
  const pool = pgPool(cfg.databaseUrl, cfg.namespace, poolSize, log);
  const redis = new Redis(cfg.redisUrl, { maxRetriesPerRequest: 2, enableOfflineQueue: true, lazyConnect: false });
  redis.on('error', (err) => log.warn('redis error', { err }));
  const kafka = kafkaClient(cfg, `${cfg.namespace}-${name}`);
  const codec = new EventCodec(cfg.schemaRegistryUrl);
  await codec.registerAll((t) => topicOfType(topics, t));
  const producer = await BatchingProducer.connect(kafka, cfg.produceLingerMs);
  const publisher = new EventPublisher(topics, codec, producer);
  return {
    cfg, topics, log, pool, redis, kafka, codec, producer, publisher,
    async close() {
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
