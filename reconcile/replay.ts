import { AssignerProtocol, type Kafka, type PartitionAssigner } from 'kafkajs';
import type { LedgerEvent } from '../domain/events.ts';
import { AUDIT_TRAIL_FIELDS } from '../domain/events.ts';
import { EventCodec, UndecodableMessage } from '../schemas/codec.ts';

/** Offsets [start, end) of one partition. */
export interface PartitionRange {
  topic: string;
  partition: number;
  start: number;
  end: number;
}

const SLICE = 1000;

/**
 * The codec replays decode with: events without their audit trail (who asked, from where,
 * a token's signature), which no ledger rule reads, so the fold never waits on making
 * strings of them. Every fold of the audit, in any thread, decodes alike.
 */
export const replayCodec = (registryUrl: string) => new EventCodec(registryUrl, { skip: AUDIT_TRAIL_FIELDS });

export const positionKey = (topic: string, partition: number) => `${topic}/${partition}`;

/**
 * The offsets of a time range, per partition, from the broker's index of append times:
 * `start` is the first message appended at or after `from`, `end` the first at or after
 * `to` (or the end of the partition now). Without `from` the range starts at the beginning.
 */
export async function resolveRanges(kafka: Kafka, topics: string[], range: { from?: Date; to?: Date } = {}): Promise<PartitionRange[]> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const out: PartitionRange[] = [];
    for (const topic of topics) {
      const bounds = await admin.fetchTopicOffsets(topic);
      const starts = range.from ? await admin.fetchTopicOffsetsByTimestamp(topic, range.from.getTime()) : null;
      const ends = range.to ? await admin.fetchTopicOffsetsByTimestamp(topic, range.to.getTime()) : null;
      for (const b of bounds) {
        const low = Number(b.low);
        const high = Number(b.high);
        const start = Math.max(low, Number(starts?.find((s) => s.partition === b.partition)?.offset ?? low));
        const end = Math.min(high, Number(ends?.find((s) => s.partition === b.partition)?.offset ?? high));
        out.push({ topic, partition: b.partition, start, end: Math.max(start, end) });
      }
    }
    return out;
  } finally {
    await admin.disconnect();
  }
}

/**
 * Reads the given offset ranges with a throwaway consumer group and hands the decoded events
 * to `onBatch`, in per-partition order, at most SLICE at a time (awaited, so a slow consumer
 * of the events holds the reading back). A fetched batch can hold tens of thousands of
 * messages; decoding it slice by slice lets the decoded events die young instead of all
 * surviving into the old generation of the heap. Undecodable messages are counted, not
 * fatal: the processors dead-lettered them, and the fold skips them alike.
 */
export async function replayRanges(
  kafka: Kafka, codec: EventCodec, ranges: readonly PartitionRange[], onBatch: (events: LedgerEvent[]) => void | Promise<void>,
): Promise<{ events: number; undecodable: number }> {
  const remaining = new Map<string, PartitionRange>();
  for (const r of ranges) if (r.end > r.start) remaining.set(positionKey(r.topic, r.partition), r);
  let events = 0;
  let undecodable = 0;
  if (remaining.size === 0) return { events, undecodable };

  const topics = [...new Set([...remaining.values()].map((r) => r.topic))];
  const consumer = kafka.consumer({
    // 1 MiB per partition and fetch: kafkajs decodes a whole fetch at once and its messages live
    // until the batch is folded; at 8 MiB a 1,000,000-event audit peaked about 250 MiB higher, no faster.
    groupId: `replay-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}`, maxBytesPerPartition: 1 << 20,
    partitionAssigners: [onlyThese([...remaining.values()])],
  });
  await consumer.connect();
  await consumer.subscribe({ topics, fromBeginning: true });
  let failure: unknown = null;
  let resolve!: () => void;
  const done = new Promise<void>((r) => (resolve = r));
  await consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch, isRunning }) => {
        const range = remaining.get(positionKey(batch.topic, batch.partition));
        if (!range) return;
        try {
          await codec.prepare(batch.messages.map((m) => m.value));
          let out: LedgerEvent[] = [];
          let finished = false;
          for (const m of batch.messages) {
            if (out.length === SLICE) {
              events += out.length;
              await onBatch(out);
              out = [];
            }
            if (!isRunning()) return;
            const offset = Number(m.offset);
            if (offset < range.start) continue;
            if (offset >= range.end) {
              finished = true;
              break;
            }
            try {
              out.push(codec.decodeLoaded(m.value));
            } catch (err) {
              if (!(err instanceof UndecodableMessage)) throw err;
              undecodable++;
            }
            if (offset === range.end - 1) finished = true;
          }
          events += out.length;
          if (out.length > 0) await onBatch(out);
          if (finished && remaining.delete(positionKey(batch.topic, batch.partition)) && remaining.size === 0) resolve();
        } catch (err) {
          failure = err;
          resolve();
        }
      },
  });
  // A range that starts mid-partition is read from there (seek works once the consumer runs).
  for (const r of remaining.values()) if (r.start > 0) consumer.seek({ topic: r.topic, partition: r.partition, offset: String(r.start) });
  await done;
  await consumer.disconnect();
  if (failure) throw failure;
  return { events, undecodable };
}

/** Reads whole topics, from the beginning to their end as of the start of the replay. */
export async function replayTopics(
  kafka: Kafka, codec: EventCodec, topics: string[], onEvent: (e: LedgerEvent) => void,
): Promise<{ events: number; undecodable: number }> {
  const ranges = await resolveRanges(kafka, topics);
  return replayRanges(kafka, codec, ranges, (batch) => batch.forEach(onEvent));
}

/**
 * The replay's throwaway group has one member, and it is given exactly the partitions it
 * reads: a replay of part of the log (some partitions, a shard of an audit) fetches nothing else.
 */
function onlyThese(ranges: readonly PartitionRange[]): PartitionAssigner {
  const assignment: Record<string, number[]> = {};
  for (const r of ranges) (assignment[r.topic] ??= []).push(r.partition);
  return () => ({
    name: 'ReplayRanges',
    version: 1,
    async assign({ members }) {
      return members.map((m, i) => ({
        memberId: m.memberId,
        memberAssignment: AssignerProtocol.MemberAssignment.encode({ version: 1, assignment: i === 0 ? assignment : {}, userData: Buffer.alloc(0) }),
      }));
    },
    protocol({ topics }) {
      return { name: 'ReplayRanges', metadata: AssignerProtocol.MemberMetadata.encode({ version: 1, topics, userData: Buffer.alloc(0) }) };
    },
  });
}
