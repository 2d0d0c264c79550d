import t from 'tap';
import { createServer, type AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import Fastify, { LogController, type FastifyBaseLogger } from 'fastify';
import pino from 'pino';
import pg from 'pg';
import { Redis } from 'ioredis';
import { Kafka, logLevel } from 'kafkajs';
import { dependencyOutage, installErrorHandling } from '../api/errors.ts';
import { loadConfig } from '../infra/config.ts';

// A dependency outage reaching the API's error handler is a 503 with a code and retry-after,
// never a 500. The errors here are the real ones the clients throw, not look-alikes.

/** A port nothing listens on (bound, then closed). */
async function deadPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}

async function caught(fn: () => Promise<unknown>): Promise<unknown> {
  try {
    await fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected a failure');
}

t.test('the real errors of an unreachable or restarting dependency are outages; a bad query is not', async (t) => {
  const cfg = loadConfig();
  const port = await deadPort();

  const refusedPool = new pg.Pool({ host: '127.0.0.1', port, user: 'postgres', database: 'x', connectionTimeoutMillis: 2_000 });
  t.teardown(() => refusedPool.end());
  const pgRefused = await caught(() => refusedPool.query('select 1'));

  // The server ends the session under the client (what a Postgres restart or failover does).
  const client = new pg.Client({ connectionString: cfg.databaseUrl });
  client.on('error', () => {});
  await client.connect();
  const pgTerminated = await caught(() => client.query('select pg_terminate_backend(pg_backend_pid())'));
  const pgAfter = await caught(() => client.query('select 1'));
  await client.end().catch(() => {});

  const live = new pg.Pool({ connectionString: cfg.databaseUrl, max: 1 });
  t.teardown(() => live.end());
  const pgBadInput = await caught(() => live.query("select 'urn:uuid:x'::uuid"));
  const pgNul = await caught(() => live.query('select $1::text', ['a\u0000b']));

  const redis = new Redis({ host: '127.0.0.1', port, maxRetriesPerRequest: 1, retryStrategy: () => 20, lazyConnect: false });
  redis.on('error', () => {});
  const redisRetries = await caught(() => redis.get('x'));
  redis.disconnect();

  const realRedis = new Redis(cfg.redisUrl, { maxRetriesPerRequest: 1 });
  t.teardown(() => realRedis.disconnect());
  const closing = new Redis(cfg.redisUrl);
  await closing.ping();
  await closing.quit();
  const redisClosed = await caught(() => closing.get('x'));
  const redisWrongType = await caught(async () => {
    await realRedis.set('dependency-errors-test', 'x', 'EX', 5);
    await realRedis.hget('dependency-errors-test', 'f');
  });

  const kafka = new Kafka({ clientId: 'dependency-errors-test', brokers: [`127.0.0.1:${port}`], logLevel: logLevel.NOTHING, retry: { retries: 1, initialRetryTime: 20 }, connectionTimeout: 500 });
  const producer = kafka.producer();
  const kafkaDown = await caught(() => producer.connect());

  const cases: [string, unknown, string | null][] = [
    ['pg: connection refused', pgRefused, 'network'],
    ['pg: session terminated (57P01)', pgTerminated, 'postgres'],
    ['pg: the client after its session ended', pgAfter, 'postgres'],
    ['pg: a value Postgres cannot read (a bug, not an outage)', pgBadInput, null],
    ['pg: NUL in text (a bug, not an outage)', pgNul, null],
    ['redis: retries used up', redisRetries, 'redis'],
    ['redis: connection closed', redisClosed, 'redis'],
    ['redis: WRONGTYPE (a bug, not an outage)', redisWrongType, null],
    ['kafka: broker unreachable', kafkaDown, 'kafka'],
    ['a TypeError', new TypeError('x is not a function'), null],
    ['pg: cannot connect now (57P03)', Object.assign(new Error('the database system is starting up'), { code: '57P03' }), 'postgres'],
    ['pg: too many connections (53300)', Object.assign(new Error('sorry, too many clients already'), { code: '53300' }), 'postgres'],
    ['wrapped in a cause', new Error('grant failed', { cause: pgTerminated }), 'postgres'],
    ['an AggregateError of refused addresses', new AggregateError([Object.assign(new Error('connect ECONNREFUSED ::1:5432'), { code: 'ECONNREFUSED' })]), 'network'],
  ];
  for (const [name, err, expected] of cases) {
    t.equal(dependencyOutage(err), expected, `${name}: ${(err as Error).name}: ${(err as Error).message}`);
  }

  // Through the error handler: 503 with a code and retry-after; a bug stays a 500; both are logged.
  const lines: Record<string, any>[] = [];
  const sink = new Writable({ write(chunk, _enc, done) { lines.push(JSON.parse(String(chunk))); done(); } });
  const app = Fastify({ loggerInstance: pino({}, sink) as FastifyBaseLogger, logController: new LogController({ disableRequestLogging: true }) });
  installErrorHandling(app);
  app.get('/pg', async () => { throw pgTerminated; });
  app.get('/redis', async () => { throw redisRetries; });
  app.get('/kafka', async () => { throw kafkaDown; });
  app.get('/bug', async () => { throw pgBadInput; });
  t.teardown(() => app.close());
  for (const url of ['/pg', '/redis', '/kafka']) {
    const res = await app.inject({ method: 'GET', url });
    t.equal(res.statusCode, 503, `${url}: 503`);
    t.equal(res.json().code, 'DEPENDENCY_UNAVAILABLE');
    t.equal(res.headers['retry-after'], '2');
  }
  const bug = await app.inject({ method: 'GET', url: '/bug' });
  t.equal(bug.statusCode, 500);
  t.equal(bug.json().code, 'INTERNAL');
  t.equal(lines.length, 4, 'every 5xx is logged');
  const last = lines.at(-1)!;
  t.match(last, { level: 50, reqId: String, route: '/bug', status: 500, code: 'INTERNAL', err: { stack: /invalid input syntax/ } }, 'with its request id, route and stack');
  t.match(lines[0], { level: 40, route: '/pg', status: 503, dependency: 'postgres', err: { code: '57P01' } });
});
