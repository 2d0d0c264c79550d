// A process starts while Postgres goes away (found by the chaos campaign, issue 17): the
// migration's connection must fail the start with an error the caller sees (and `npm start`
// restarts the process), not kill it from an 'error' event nobody listens to.
import t from 'tap';
import pg from 'pg';
import { loadConfig } from '../infra/config.ts';
import { migrate } from '../infra/db.ts';
import { databaseUrlVia, tcpProxy } from './helpers/outages.ts';
import { testNamespace } from './helpers/ledger.ts';

t.test('Postgres stopping under a migration in progress rejects it; the process lives', async (t) => {
  const cfg = loadConfig();
  const schema = testNamespace();
  const url = new URL(cfg.databaseUrl);
  const proxy = await tcpProxy({ host: url.hostname, port: Number(url.port || 5432) });
  t.teardown(() => proxy.close());
  // Another starter holds the migration lock, so this one waits on it with its connection open.
  const holder = new pg.Client({ connectionString: cfg.databaseUrl });
  await holder.connect();
  t.teardown(async () => {
    await holder.query(`drop schema if exists "${schema}" cascade`).catch(() => {});
    await holder.end();
  });
  await holder.query('select pg_advisory_lock(hashtext($1))', [`hongbao-migrate:${schema}`]);

  const running = migrate(databaseUrlVia(cfg.databaseUrl, proxy.port), schema);
  running.catch(() => {});
  await new Promise((r) => setTimeout(r, 500));
  await proxy.cut();
  await t.rejects(running, 'the migration fails with the lost connection');
  await new Promise((r) => setTimeout(r, 200));
  t.pass('and no unhandled error event ended the process');
  await holder.query('select pg_advisory_unlock(hashtext($1))', [`hongbao-migrate:${schema}`]);
});
