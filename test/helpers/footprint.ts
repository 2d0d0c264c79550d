import { createHash } from 'node:crypto';
import type { Admin } from 'kafkajs';
import type { TestLedger } from './ledger.ts';

/**
 * Everything a namespace has written, in a form two snapshots can be compared by: the end
 * offset of each of its topics, each of its Postgres tables (row count and a hash of the rows'
 * contents, so an update shows as well as an insert), and each of its Redis keys (a hash of
 * the value; a key that expires is not a write). Single-use nonces of signed requests are left out: a request whose signature
 * was verified spends its nonce even when it is then refused, which is what stops its replay.
 */
export interface Footprint {
  kafka: Record<string, string>;
  tables: Record<string, string>;
  redis: Record<string, string>;
  /** Redis keys with a time to live: one disappearing has expired, which is not a write. */
  expiring: ReadonlySet<string>;
}

export async function footprintReader(l: TestLedger): Promise<{ read(): Promise<Footprint>; close(): Promise<void> }> {
  const admin: Admin = l.rt.kafka.admin();
  await admin.connect();
  const topics = Object.values(l.rt.topics);
  const { rows } = await l.rt.pool.query<{ table_name: string }>(
    "select table_name from information_schema.tables where table_schema = $1 and table_type = 'BASE TABLE' order by 1", [l.ns],
  );
  const quoted = (name: string) => `"${name.replace(/"/g, '""')}"`;
  const sql = rows.map((r) => `select '${r.table_name.replace(/'/g, "''")}' as t, count(*)::text || ':' || coalesce(sum(hashtext(x::text)), 0)::text as h from ${quoted(l.ns)}.${quoted(r.table_name)} x`).join(' union all ');
  const noncePrefix = `${l.ns}:nonce:`;
  return {
    async read() {
      const [offsets, tables, keys] = await Promise.all([
        Promise.all(topics.map(async (topic) => [topic, (await admin.fetchTopicOffsets(topic)).map((p) => `${p.partition}:${p.high}`).sort().join(',')] as const)),
        l.rt.pool.query<{ t: string; h: string }>(sql),
        // KEYS, not SCAN: the test Redis is shared by many namespaces, and a full SCAN over it
        // is ten times slower than one KEYS (a few ms), paid for every request sent.
        l.rt.redis.keys(`${l.ns}:*`).then((found) => found.filter((k) => !k.startsWith(noncePrefix)).sort()),
      ]);
      const dumps = keys.length === 0 ? [] : (await l.rt.redis.pipeline(keys.flatMap((k) => [['dumpBuffer', k], ['pttl', k]])).exec()) ?? [];
      const redis: Record<string, string> = {};
      const expiring = new Set<string>();
      keys.forEach((k, i) => {
        const value = dumps[2 * i]?.[1] as Buffer | null | undefined;
        const ttl = dumps[2 * i + 1]?.[1] as number | undefined;
        if (value) redis[k] = createHash('sha256').update(value).digest('base64url').slice(0, 16);
        if (typeof ttl === 'number' && ttl > 0) expiring.add(k);
      });
      return { kafka: Object.fromEntries(offsets), tables: Object.fromEntries(tables.rows.map((r) => [r.t, r.h])), redis, expiring };
    },
    close: () => admin.disconnect(),
  };
}

/** What differs between two footprints, one line per topic, table or key. */
export function footprintDiff(before: Footprint, after: Footprint): string[] {
  const out: string[] = [];
  for (const part of ['kafka', 'tables', 'redis'] as const) {
    const names = new Set([...Object.keys(before[part]), ...Object.keys(after[part])]);
    for (const name of names) {
      const [was, is] = [before[part][name], after[part][name]];
      if (was === is || (part === 'redis' && is === undefined && before.expiring.has(name))) continue;
      out.push(`${part} ${name}: ${was ?? '(none)'} -> ${is ?? '(none)'}`);
    }
  }
  return out;
}
