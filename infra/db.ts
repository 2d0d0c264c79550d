import pg from 'pg';
import { readdirSync, readFileSync } from 'node:fs';
import { logger, type Logger } from './log.ts';

// bigint columns hold money; parse them as JS numbers but refuse anything unsafe.
pg.types.setTypeParser(20, (v: string) => {
  const n = Number(v);
  if (!Number.isSafeInteger(n)) throw new RangeError(`bigint ${v} is outside the safe integer range`);
  return n;
});

/**
 * A pool whose connections live in the namespace's schema, and that outlives a Postgres
 * restart. A connection that dies emits 'error' on its client, and with no listener that
 * kills the process: pg-pool listens only while the client is idle, so a restart that lands
 * mid-transaction (a checked-out client) would end it. Every client gets a listener from
 * birth; the query in flight fails on its own, the dead client is discarded on release, and
 * the next checkout connects afresh.
 */
export function pgPool(databaseUrl: string, schema: string, max = 10, log: Logger = logger({ lib: 'pg' })): pg.Pool {
  const pool = new pg.Pool({ connectionString: databaseUrl, max, options: `-c search_path=${schema}` });
  pool.on('connect', (client) => client.on('error', (err) => log.warn('postgres connection lost', { err })));
  // An idle client's error is re-emitted here too; the listener above has already logged it.
  pool.on('error', () => {});
  return pool;
}

const MIGRATIONS_DIR = new URL('./migrations/', import.meta.url);

/**
 * Applies versioned SQL migrations (infra/migrations/NNN_name.sql) to the namespace's
 * schema, once each, under an advisory lock so concurrent starters do not race.
 */
export async function migrate(databaseUrl: string, schema: string): Promise<string[]> {
  const client = new pg.Client({ connectionString: databaseUrl });
  // A connection lost mid-migration (Postgres stopping while a process starts) also emits
  // 'error' on the client; unheard, that kills the process. The query in flight fails anyway,
  // and so does the start, with an error the caller sees.
  client.on('error', () => {});
  await client.connect();
  const applied: string[] = [];
  try {
    await client.query('select pg_advisory_lock(hashtext($1))', [`hongbao-migrate:${schema}`]);
    await client.query(`create schema if not exists "${schema}"`);
    await client.query(`set search_path to "${schema}"`);
    await client.query('create table if not exists schema_migrations (version text primary key, applied_at timestamptz not null default now())');
    const done = new Set((await client.query<{ version: string }>('select version from schema_migrations')).rows.map((r) => r.version));
    const files = readdirSync(MIGRATIONS_DIR).filter((f) => /^\d{3}_.+\.sql$/.test(f)).sort();
    for (const file of files) {
      if (done.has(file)) continue;
      await client.query('begin');
      try {
        await client.query(readFileSync(new URL(file, MIGRATIONS_DIR), 'utf8'));
        await client.query('insert into schema_migrations(version) values ($1)', [file]);
        await client.query('commit');
        applied.push(file);
      } catch (err) {
        await client.query('rollback');
        throw new Error(`migration ${file} failed: ${(err as Error).message}`);
      }
    }
  } finally {
    await client.query('select pg_advisory_unlock(hashtext($1))', [`hongbao-migrate:${schema}`]).catch(() => {});
    await client.end();
  }
  return applied;
}

export async function dropSchema(databaseUrl: string, schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: databaseUrl });
  client.on('error', () => {});
  await client.connect();
  try {
    await client.query(`drop schema if exists "${schema}" cascade`);
  } finally {
    await client.end();
  }
}
