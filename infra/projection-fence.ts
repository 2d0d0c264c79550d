import type { Admin, ICustomPartitioner } from 'kafkajs';
import type { Runtime } from './runtime.ts';
import { KafkaNotConnected } from './kafka-common.ts';

export class ProjectionBehind extends Error {}

/**
 * A Kafka call on a request's path may not outlive the request's deadline: while a broker
 * restarts, kafkajs retries for tens of seconds, and the caller must answer 503 fast instead.
 */
export async function beforeDeadline<T>(work: Promise<T>, deadline: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new ProjectionBehind(`${what} did not answer in time`)), Math.max(0, deadline - Date.now()));
  });
  try {
    return await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Read-your-writes against the ledger projection: waits until the projector has applied
 * everything on a user's wallet partition up to a point. Used by withdrawal, which must see
 * every reward the user was granted before it decides.
 */
export class ProjectionFence {
  private admin: Promise<Admin> | null = null;
  private partitioner: ReturnType<ICustomPartitioner> | null = null;

  constructor(private readonly rt: Runtime, private readonly projector = `${rt.cfg.namespace}.ledger-projector`) {}

  private connected(): Promise<Admin> {
    // An API started during a Kafka outage: refuse at once rather than wait out kafkajs's retries.
    if (!this.rt.kafkaLink.connected) return Promise.reject(new KafkaNotConnected('the projection fence'));
    this.admin ??= (async () => {
      const admin = this.rt.kafka.admin();
      await admin.connect();
      return admin;
    })().catch((err) => {
      this.admin = null;
      throw err;
    });
    return this.admin;
  }

  /** The wallet partition holding a user's events, and its current end offset. */
  async userPartitionEnd(userId: string, deadline = Date.now() + 5_000): Promise<{ partition: number; end: number }> {
    const topic = this.rt.topics.wallet;
    const offsets = await beforeDeadline(this.connected().then((a) => a.fetchTopicOffsets(topic)), deadline, 'Kafka (the wallet topic\'s end offsets)');
    // The producer's own partitioner (murmur2, as the Java client): same key, same partition.
    this.partitioner ??= (await import('kafkajs')).Partitioners.DefaultPartitioner();
    const partition = this.partitioner({
      topic,
      partitionMetadata: offsets.map((o) => ({ partitionId: o.partition, leader: 0, partitionErrorCode: 0, replicas: [0], isr: [0] })),
      message: { key: userId, value: null },
    });
    const end = Number(offsets.find((o) => o.partition === partition)!.high);
    return { partition, end };
  }

  /** Resolves once the projection's next offset on the partition is at least `end`. */
  async waitFor(partition: number, end: number, deadline: number): Promise<void> {
    for (;;) {
      const { rows } = await this.rt.pool.query<{ next_offset: number }>(
        'select next_offset from consumer_offsets where consumer = $1 and topic = $2 and partition = $3',
        [this.projector, this.rt.topics.wallet, partition],
      );
      if ((rows[0]?.next_offset ?? 0) >= end) return;
      if (Date.now() > deadline) throw new ProjectionBehind(`projection of partition ${partition} has not reached offset ${end}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Waits until everything produced to the user's partition so far is projected. */
  async catchUp(userId: string, deadline: number): Promise<void> {
    const { partition, end } = await this.userPartitionEnd(userId, deadline);
    if (end > 0) await this.waitFor(partition, end, deadline);
  }

  /** Waits until everything produced to every wallet partition so far is projected. */
  async catchUpAll(deadline: number): Promise<void> {
    const offsets = await beforeDeadline(this.connected().then((a) => a.fetchTopicOffsets(this.rt.topics.wallet)), deadline, 'Kafka (the wallet topic\'s end offsets)');
    for (const o of offsets) {
      if (Number(o.high) > 0) await this.waitFor(o.partition, Number(o.high), deadline);
    }
  }

  /** Messages on a topic the projector has not applied yet, over all partitions. */
  async lag(topic: string): Promise<number> {
    const offsets = await (await this.connected()).fetchTopicOffsets(topic);
    const { rows } = await this.rt.pool.query<{ partition: number; next_offset: number }>(
      'select partition, next_offset from consumer_offsets where consumer = $1 and topic = $2', [this.projector, topic],
    );
    const at = new Map(rows.map((r) => [r.partition, r.next_offset]));
    return offsets.reduce((sum, o) => sum + Math.max(0, Number(o.high) - (at.get(o.partition) ?? 0)), 0);
  }

  async close(): Promise<void> {
    const admin = this.admin;
    this.admin = null;
    if (admin) await (await admin).disconnect().catch(() => {});
  }
}
