import type { Consumer, ConsumerRunConfig } from 'kafkajs';
import type { Runtime } from '../infra/runtime.ts';
import { decodeOrDeadLetter, type DecodedItem } from './decode.ts';

export interface ChunkContext {
  topic: string;
  partition: number;
  /** False once the consumer is stopping or the batch went stale in a rebalance. */
  isActive(): boolean;
  heartbeat(): Promise<void>;
}

/**
 * What a handler did with a chunk: its next offset to record ("done"), a position to re-read
 * from ("seek"), or nothing, because the consumer is stopping ("stop"). After "seek" or
 * "stop" the rest of the batch is left unread and is delivered again.
 */
export type ChunkOutcome = { done: number } | { seek: number } | 'stop';

export interface BatchConsumerOptions {
  groupId: string;
  topics: string[];
  chunkSize: number;
  partitionsConsumedConcurrently: number;
  maxBytesPerPartition: number;
  handle(items: DecodedItem[], ctx: ChunkContext): Promise<ChunkOutcome>;
  /** Called on every (re)assignment, e.g. to seek to offsets stored elsewhere. */
  onAssignment?(consumer: Consumer, assignment: Record<string, number[]>): Promise<void>;
}

export interface RunningConsumer {
  /** Leaves the group (its partitions move on at once) and disconnects. */
  stop(): Promise<void>;
}

/*
 * Group membership. A member that stops heartbeating is dropped after the session timeout,
 * and only then are its partitions handed on: a SIGKILLed instance's work waits that long,
 * even for its own restart (the new member's join waits for the old member to rejoin or
 * expire). 6 s is the broker's default group.min.session.timeout.ms, the shortest it
 * allows. kafkajs heartbeats only when asked (between fetches, and by the handler), so a
 * fetch on an idle partition waits at most a second, and a heartbeat goes out every second
 * while a chunk is being handled: a slow chunk does not cost a live member its partitions.
 */
const SESSION_TIMEOUT_MS = 6_000;
const HEARTBEAT_MS = 1_000;
const MAX_FETCH_WAIT_MS = 1_000;
/* A handler failing on a dependency (Postgres down) is retried by kafkajs with backoff capped
 * here, so the work resumes within seconds of the dependency's return; when the retries run
 * out the consumer restarts and rejoins. */
const MAX_RETRY_MS = 5_000;
/* A crash kafkajs will not restart from (an error it deems unrecoverable) would leave a live
 * process consuming nothing: such a consumer is restarted here, backing off to this. */
const MAX_RESTART_MS = 60_000;

/**
 * The one consumer loop every processor uses: batches in chunks, undecodable messages
 * dead-lettered (processing continues), Kafka offsets committed only after a chunk's
 * handler finished, and a heartbeat after each chunk.
 */
export async function runBatchConsumer(rt: Runtime, opts: BatchConsumerOptions): Promise<RunningConsumer> {
  const consumer = rt.kafka.consumer({
    groupId: opts.groupId, maxBytesPerPartition: opts.maxBytesPerPartition,
    sessionTimeout: SESSION_TIMEOUT_MS, heartbeatInterval: HEARTBEAT_MS, maxWaitTimeInMs: MAX_FETCH_WAIT_MS,
    retry: { maxRetryTime: MAX_RETRY_MS },
  });
  const log = rt.log.child({ group: opts.groupId });
  await consumer.connect();
  await consumer.subscribe({ topics: opts.topics, fromBeginning: true });
  if (opts.onAssignment) {
    const onAssignment = opts.onAssignment;
    consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
      void onAssignment(consumer, payload.memberAssignment).catch((err) => log.error('assignment hook failed', { err }));
    });
  }
  const config: ConsumerRunConfig = {
    autoCommit: false,
    eachBatchAutoResolve: false,
    partitionsConsumedConcurrently: opts.partitionsConsumedConcurrently,
    eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
      const source = { topic: batch.topic, partition: batch.partition, consumer: opts.groupId };
      const ctx: ChunkContext = { topic: batch.topic, partition: batch.partition, isActive: () => isRunning() && !isStale(), heartbeat };
      for (let i = 0; i < batch.messages.length && ctx.isActive(); i += opts.chunkSize) {
        const slice = batch.messages.slice(i, i + opts.chunkSize);
        const outcome = await whileHeartbeating(heartbeat, async () =>
          opts.handle(await decodeOrDeadLetter(rt.codec, slice, source, rt.producer, rt.topics.deadLetter, rt.log), ctx));
        if (outcome === 'stop') return;
        if ('seek' in outcome) {
          consumer.seek({ topic: batch.topic, partition: batch.partition, offset: String(outcome.seek) });
          return;
        }
        resolveOffset(slice[slice.length - 1]!.offset);
        await consumer.commitOffsets([{ topic: batch.topic, partition: batch.partition, offset: String(outcome.done) }]);
        await heartbeat();
      }
    },
  };

  let stopped = false;
  let restarts = 0;
  let lastCrashAt = 0;
  let restartTimer: NodeJS.Timeout | null = null;
  const restart = () => {
    const inMs = Math.min(MAX_RESTART_MS, 1_000 * 2 ** restarts++);
    log.error('consumer restarting', { inMs });
    restartTimer = setTimeout(() => {
      restartTimer = null;
      if (stopped) return;
      consumer.connect().then(() => consumer.run(config)).then(
        () => log.info('consumer restarted'),
        (err) => {
          log.error('consumer restart failed', { err });
          restart();
        },
      );
    }, inMs);
  };
  consumer.on(consumer.events.CRASH, ({ payload }) => {
    // kafkajs has disconnected the consumer and logged the crash; with `restart` set it runs it again itself.
    if (payload.restart || stopped) return;
    // A crash that comes back at once keeps backing off; one after a quiet spell starts over.
    if (Date.now() - lastCrashAt > MAX_RESTART_MS) restarts = 0;
    lastCrashAt = Date.now();
    log.error('consumer crashed and kafkajs will not restart it', { err: payload.error });
    restart();
  });
  await consumer.run(config);
  return {
    async stop() {
      stopped = true;
      if (restartTimer) clearTimeout(restartTimer);
      await consumer.disconnect();
    },
  };
}

/**
 * Keeps the member's session alive while a chunk is handled. A rebalance the pulse hears of
 * is heard again by the heartbeat after the chunk, which rejoins the group.
 */
async function whileHeartbeating<T>(heartbeat: () => Promise<void>, work: () => Promise<T>): Promise<T> {
  const pulse = setInterval(() => void heartbeat().catch(() => {}), HEARTBEAT_MS);
  try {
    return await work();
  } finally {
    clearInterval(pulse);
  }
}
