import { Kafka, Partitioners, logLevel, type ConfigResourceTypes, type Admin, type Producer, type logCreator } from 'kafkajs';
import { PARTITION_KEY_HEADER } from './kafka-common.ts';
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

/** The ledger's producer: idempotent, acks=all (BatchingProducer), one request in flight, the ledger's partitioner. */
export function ledgerProducer(kafka: Kafka): Producer {
  return kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false, createPartitioner: ledgerPartitioner });
}

export { PARTITION_KEY_HEADER, KafkaNotConnected, isKafkaError, BatchingProducer, type OutgoingMessage } from './kafka-common.ts';
