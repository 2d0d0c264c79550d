// `npm run bench`: throughput and latency of the ledger against raw baselines measured in
// the same run, on an isolated namespace that is removed afterwards. Not a test: figures go
// to docs/benchmarks.md. Knobs: BENCH_ROUNDS (3), BENCH_ROUND_SECONDS (10), BENCH_CONCURRENCY (50),
// BENCH_AUDIT_EVENTS (1,000,000: the replay-audit log), BENCH_AUDIT_ROUNDS (5; bench/audit.ts runs that part alone;
// bench/packets.ts runs the red-packet grabs alone). BENCH_ONLY=grants[,draws,grabs,coupons] measures just those
// request paths (each against its bare route, in the same run) and prints them, for before/after comparisons of a change.
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import os from 'node:os';
import pg from 'pg';
import { loadConfig, topicsOf } from '../infra/config.ts';
import { setupNamespace, removeNamespace, openRuntime } from '../infra/runtime.ts';
import { kafkaClient } from '../infra/kafka.ts';
import { generateSigningKeyPem, publicKeyOf } from '../domain/tokens.ts';
import { signUserToken } from '../api/auth/user-jwt.ts';
import { tokenIdFor, creditFor } from '../domain/grants.ts';
import { withdrawalIdFor } from '../domain/withdrawals.ts';
import { signRequest } from '../api/auth/upstream-signature.ts';
import { processGroup, stopProcess, waitHttp } from './processes.ts';
import { runLoad, median, peakRssMiB, type LoadResult } from './load.ts';
import { benchAudit } from './audit.ts';
import { benchGrabs } from './packets.ts';
import { benchDraws } from './draws.ts';
import { benchCoupons } from './coupons.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
// A replay-audit round is a pair of 5-15 s reads: more of them steady its median on a shared host at little cost.
const AUDIT_ROUNDS = Number(process.env.BENCH_AUDIT_ROUNDS ?? 5);
const ROUND_MS = Number(process.env.BENCH_ROUND_SECONDS ?? 10) * 1000;
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 50);
const API_PORT = 3100;
const BARE_PORT = 3101;
const PROVIDER_PORT = 3102;
const PAYOUT_CAPACITY = Number(process.env.BENCH_PAYOUT_CAPACITY ?? 1000);
const PAYOUTS = Number(process.env.BENCH_PAYOUTS ?? 10_000);
const READ_USERS = 10_000;
const ONLY = new Set((process.env.BENCH_ONLY ?? '').split(',').map((s) => s.trim()).filter(Boolean));

const ns = `bench_${Date.now().toString(36)}`;
const cfg = loadConfig({ namespace: ns });
const upstream = { id: 'bench', secret: randomBytes(16).toString('hex') };
const adminToken = randomBytes(16).toString('hex');
const userKey = generateSigningKeyPem();
const providerKey = randomBytes(16).toString('hex');
const childEnv = {
  ...process.env, LEDGER_NAMESPACE: ns, API_PORT: String(API_PORT), PORT: String(BARE_PORT), LOG_LEVEL: 'warn',
  UPSTREAM_KEYS: `${upstream.id}=${upstream.secret}`, ADMIN_TOKEN: adminToken, TOKEN_SIGNING_KEY: generateSigningKeyPem(),
  USER_TOKEN_PUBLIC_KEYS: JSON.stringify({ 'bench-user': publicKeyOf(userKey).export({ type: 'spki', format: 'pem' }) }),
  PROVIDER_PORT: String(PROVIDER_PORT), PROVIDER_URL: `http://127.0.0.1:${PROVIDER_PORT}`, PROVIDER_API_KEY: providerKey,
  PROVIDER_CAPACITY_PER_SEC: String(PAYOUT_CAPACITY), PROVIDER_LATENCY_MS: '5', PAYOUT_RATE_PER_SEC: String(PAYOUT_CAPACITY),
};
const procs = processGroup(childEnv);
const run = procs.run;
const stop = stopProcess;
const log = (s: string) => process.stderr.write(`[bench] ${s}\n`);

async function main() {
  log(`namespace ${ns}; ${ROUNDS} rounds of ${ROUND_MS / 1000}s at concurrency ${CONCURRENCY}; ${os.cpus().length} cores`);
  await setupNamespace(cfg);
  const api = run('bin/api.ts');
  const bare = run('bench/bare-server.ts');
  await waitHttp(`http://127.0.0.1:${API_PORT}/health`);
  await waitHttp(`http://127.0.0.1:${BARE_PORT}/bare`);
  const admin = { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' };
  await fetch(`http://127.0.0.1:${API_PORT}/v1/admin/activities/bench-rain`, { method: 'PUT', headers: admin, body: JSON.stringify({ name: 'bench', currency: 'CNY', maxSingleGrant: 20_000 }) });
  const funded = await fetch(`http://127.0.0.1:${API_PORT}/v1/admin/activities/bench-rain/fundings`, { method: 'POST', headers: admin, body: JSON.stringify({ fundingId: 'bench', amount: 1e15, currency: 'CNY' }) });
  if (funded.status !== 201) throw new Error(`funding failed: ${await funded.text()}`);

  let seq = 0;
  const grantReq = () => {
    const n = seq++;
    const body = JSON.stringify({ activityId: 'bench-rain', sceneId: 'rain', orderNo: `o-${n}`, userId: `u-${n % 100_000}`, amount: 1 + (n % 100), currency: 'CNY' });
    return { method: 'POST' as const, path: '/v1/grants', body, headers: { 'content-type': 'application/json', ...signRequest(upstream, 'POST', '/v1/grants', body) } };
  };
  const bareReq = () => {
    const n = seq++;
    const body = JSON.stringify({ activityId: 'bench-rain', sceneId: 'rain', orderNo: `o-${n}`, userId: `u-${n % 100_000}`, amount: 1 + (n % 100), currency: 'CNY' });
    return { method: 'POST' as const, path: '/bare', body, headers: { 'content-type': 'application/json', ...signRequest(upstream, 'POST', '/bare', body) } };
  };
  log('warming up');
  await runLoad({ origin: `http://127.0.0.1:${API_PORT}`, durationMs: 3000, concurrency: CONCURRENCY, request: grantReq });
  await runLoad({ origin: `http://127.0.0.1:${BARE_PORT}`, durationMs: 3000, concurrency: CONCURRENCY, request: bareReq });

  const grants: LoadResult[] = [];
  const bares: LoadResult[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    bares.push(await runLoad({ origin: `http://127.0.0.1:${BARE_PORT}`, durationMs: ROUND_MS, concurrency: CONCURRENCY, request: bareReq }));
    grants.push(await runLoad({ origin: `http://127.0.0.1:${API_PORT}`, durationMs: ROUND_MS, concurrency: CONCURRENCY, request: grantReq }));
    log(`round ${r + 1}: grants ${grants[r]!.rps.toFixed(0)}/s p99 ${grants[r]!.p99.toFixed(1)}ms (errors ${grants[r]!.errors}); bare ${bares[r]!.rps.toFixed(0)}/s p99 ${bares[r]!.p99.toFixed(1)}ms`);
  }
  const apiPeak = await peakRssMiB(api.pid!);
  await stop(api);
  await stop(bare);
  if (ONLY.size > 0) {
    const bareRps = median(bares.map((b) => b.rps));
    const grantRps = median(grants.map((g) => g.rps));
    const parts: Record<string, unknown> = {
      grants: { rps: grantRps, p99: median(grants.map((g) => g.p99)), errors: grants.reduce((n, g) => n + g.errors, 0), bareRps, ratio: grantRps / bareRps },
    };
    if (ONLY.has('draws')) parts.draws = await benchDraws(ROUNDS, ROUND_MS, CONCURRENCY);
    if (ONLY.has('grabs')) parts.grabs = await benchGrabs(ROUNDS, ROUND_MS, CONCURRENCY);
    if (ONLY.has('coupons')) parts.coupons = await benchCoupons(ROUNDS, ROUND_MS, CONCURRENCY);
    process.stdout.write(JSON.stringify(parts, null, 2) + '\n');
    return;
  }

  // Projection: the projector catches up on everything the grant runs produced.
  const kafka = kafkaClient(cfg, `${ns}-bench`);
  const kadmin = kafka.admin();
  await kadmin.connect();
  const topics = topicsOf(ns);
  let total = 0;
  for (const t of [topics.wallet, topics.budget]) for (const p of await kadmin.fetchTopicOffsets(t)) total += Number(p.high);
  await kadmin.disconnect();
  const pool = new pg.Pool({ connectionString: cfg.databaseUrl, options: `-c search_path=${ns}` });
  log(`projecting ${total} events`);
  const projector = run('bin/projector.ts');
  const t0 = performance.now();
  let firstAt = 0;
  let projectorPeak: number | null = null;
  for (;;) {
    const { rows } = await pool.query('select coalesce(sum(next_offset),0)::bigint as n from consumer_offsets');
    const done = Number(rows[0].n);
    if (done > 0 && !firstAt) firstAt = performance.now();
    projectorPeak = (await peakRssMiB(projector.pid!)) ?? projectorPeak;
    if (done >= total) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const tEnd = performance.now();
  await stop(projector);
  const projectedPerSec = total / ((tEnd - firstAt) / 1000);
  const projectedInclStartup = total / ((tEnd - t0) / 1000);

  // Raw baseline: the same rows (event, two postings, a token) in plain multi-row INSERTs.
  const raw = `${ns}_raw`;
  await pool.query(`create schema ${raw}; create table ${raw}.ledger_events (like ${ns}.ledger_events including all);
    create table ${raw}.postings (like ${ns}.postings including all); create table ${raw}.tokens (like ${ns}.tokens including all)`);
  const rawStart = performance.now();
  const BATCH = 2000;
  for (let off = 0; off < total; off += BATCH) {
    const n = Math.min(BATCH, total - off);
    const ids = Array.from({ length: n }, () => crypto.randomUUID());
    const at = new Date().toISOString();
    const client = await pool.connect();
    try {
      await client.query('begin');
      await client.query(`insert into ${raw}.ledger_events(event_id, event_type, activity_id, topic, partition, "offset", occurred_at)
        select * from unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::int[], $6::bigint[], $7::timestamptz[])`,
        [ids, ids.map(() => 'TokenIssued'), ids.map(() => 'bench-rain'), ids.map(() => topics.wallet), ids.map(() => 0), ids.map((_, i) => off + i), ids.map(() => at)]);
      await client.query(`insert into ${raw}.postings(event_id, leg, account, currency, amount, created_at)
        select * from unnest($1::uuid[], $2::smallint[], $3::text[], $4::text[], $5::bigint[], $6::timestamptz[])`,
        [[...ids, ...ids], [...ids.map(() => 0), ...ids.map(() => 1)], [...ids.map(() => 'activity:bench-rain:budget'), ...ids.map((_, i) => `user:u-${i}:pending`)], [...ids, ...ids].map(() => 'CNY'), [...ids.map(() => -5), ...ids.map(() => 5)], [...ids, ...ids].map(() => at)]);
      await client.query(`insert into ${raw}.tokens(token_id, user_id, activity_id, scene_id, order_no, amount, currency, status, issued_at, statement_seq, budget_slice_end)
        select * from unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::text[], $8::text[], $9::timestamptz[], $10::bigint[], $11::bigint[])`,
        [ids, ids.map((_, i) => `u-${i}`), ids.map(() => 'bench-rain'), ids.map(() => 'rain'), ids.map((_, i) => `o-${off + i}`), ids.map(() => 5), ids.map(() => 'CNY'), ids.map(() => 'pending'), ids.map(() => at), ids.map((_, i) => off + i), ids.map((_, i) => 5 * (off + i + 1))]);
      await client.query('commit');
    } finally {
      client.release();
    }
  }
  const rawPerSec = total / ((performance.now() - rawStart) / 1000);
  await pool.query(`drop schema ${raw} cascade`);

  const reads = await benchWalletReads();
  const payouts = await benchPayouts(pool);
  await pool.end();
  const grabs = await benchGrabs(ROUNDS, ROUND_MS, CONCURRENCY);
  const draws = await benchDraws(ROUNDS, ROUND_MS, CONCURRENCY);
  const coupons = await benchCoupons(ROUNDS, ROUND_MS, CONCURRENCY);
  const audit = await benchAudit(AUDIT_ROUNDS);

  const med = (xs: LoadResult[], k: 'rps' | 'p50' | 'p99') => median(xs.map((x) => x[k]));
  const result = {
    at: new Date().toISOString(), cores: os.cpus().length, rounds: ROUNDS, roundSeconds: ROUND_MS / 1000, concurrency: CONCURRENCY,
    grants: { rps: med(grants, 'rps'), p50: med(grants, 'p50'), p99: med(grants, 'p99'), errors: grants.reduce((s, g) => s + g.errors, 0), requests: grants.reduce((s, g) => s + g.requests, 0) },
    bareFastify: { rps: med(bares, 'rps'), p50: med(bares, 'p50'), p99: med(bares, 'p99') },
    grantsToBareRatio: med(grants, 'rps') / med(bares, 'rps'),
    projection: { events: total, perSec: projectedPerSec, perSecIncludingStartup: projectedInclStartup, rawInsertPerSec: rawPerSec, ratioToRaw: projectedPerSec / rawPerSec },
    peakRssMiB: { api: apiPeak, projector: projectorPeak, loadGenerator: Math.round(process.resourceUsage().maxRSS / 1024) },
    walletReads: reads,
    payouts,
    grabs,
    draws,
    coupons,
    audit,
  };
  mkdirSync(`${root}/.local`, { recursive: true });
  writeFileSync(`${root}/.local/bench-latest.json`, JSON.stringify(result, null, 2));
  console.log(JSON.stringify(result, null, 2));
  console.log(`
| figure | ledger | raw baseline | ratio |
| --- | --- | --- | --- |
| grants/s, POST /v1/grants vs bare fastify route (median of ${ROUNDS} × ${ROUND_MS / 1000}s) | ${result.grants.rps.toFixed(0)} | ${result.bareFastify.rps.toFixed(0)} | ${result.grantsToBareRatio.toFixed(2)} |
| grant latency p50 / p99 (ms) | ${result.grants.p50.toFixed(1)} / ${result.grants.p99.toFixed(1)} | ${result.bareFastify.p50.toFixed(1)} / ${result.bareFastify.p99.toFixed(1)} | |
| projected events/s (effectively once) vs raw multi-row INSERT | ${projectedPerSec.toFixed(0)} | ${rawPerSec.toFixed(0)} | ${result.projection.ratioToRaw.toFixed(2)} |
| balance reads/s, GET /v1/wallets/:userId (user JWT) vs bare fastify GET | ${reads.balance.rps.toFixed(0)} | ${reads.bare.rps.toFixed(0)} | ${(reads.balance.rps / reads.bare.rps).toFixed(2)} |
| balance read latency p50 / p99 (ms) | ${reads.balance.p50.toFixed(1)} / ${reads.balance.p99.toFixed(1)} | ${reads.bare.p50.toFixed(1)} / ${reads.bare.p99.toFixed(1)} | |
| balance reads/s with the cache off (WALLET_CACHE_MS=0) vs bare fastify GET | ${reads.balanceUncached.rps.toFixed(0)} | ${reads.bare.rps.toFixed(0)} | ${(reads.balanceUncached.rps / reads.bare.rps).toFixed(2)} |
| balance read latency with the cache off p50 / p99 (ms) | ${reads.balanceUncached.p50.toFixed(1)} / ${reads.balanceUncached.p99.toFixed(1)} | | |
| first statement page reads/s vs bare fastify GET | ${reads.statement.rps.toFixed(0)} | ${reads.bare.rps.toFixed(0)} | ${(reads.statement.rps / reads.bare.rps).toFixed(2)} |
| statement latency p50 / p99 (ms) | ${reads.statement.p50.toFixed(1)} / ${reads.statement.p99.toFixed(1)} | | |
| red-packet grabs/s on one hot packet (each a claim) vs bare fastify POST | ${grabs.hot.rps.toFixed(0)} | ${grabs.bare.rps.toFixed(0)} | ${(grabs.hot.rps / grabs.bare.rps).toFixed(2)} |
| hot-packet grab latency p50 / p99 (ms) | ${grabs.hot.p50.toFixed(1)} / ${grabs.hot.p99.toFixed(1)} | ${grabs.bare.p50.toFixed(1)} / ${grabs.bare.p99.toFixed(1)} | |
| grabs/s across 2,000 packets (each a claim) vs bare fastify POST; p99 | ${grabs.many.rps.toFixed(0)}; ${grabs.many.p99.toFixed(1)} ms | ${grabs.bare.rps.toFixed(0)} | ${(grabs.many.rps / grabs.bare.rps).toFixed(2)} |
| grabs/s turned away (empty packet) vs bare fastify POST; p99 | ${grabs.turnedAway.rps.toFixed(0)}; ${grabs.turnedAway.p99.toFixed(1)} ms | ${grabs.bare.rps.toFixed(0)} | ${(grabs.turnedAway.rps / grabs.bare.rps).toFixed(2)} |
| lottery draws/s, POST /v1/draws (${(draws.draws.winShare * 100).toFixed(0)}% won) vs bare fastify POST | ${draws.draws.rps.toFixed(0)} | ${draws.bare.rps.toFixed(0)} | ${(draws.draws.rps / draws.bare.rps).toFixed(2)} |
| draw latency p50 / p99 (ms) | ${draws.draws.p50.toFixed(1)} / ${draws.draws.p99.toFixed(1)} | ${draws.bare.p50.toFixed(1)} / ${draws.bare.p99.toFixed(1)} | |
| gift-pack grants/s, POST /v1/gift-packs/grants (3 coupons each) vs bare fastify POST; p50 / p99 | ${coupons.grants.rps.toFixed(0)}; ${coupons.grants.p50.toFixed(1)} / ${coupons.grants.p99.toFixed(1)} ms | ${coupons.bare.rps.toFixed(0)} | ${(coupons.grants.rps / coupons.bare.rps).toFixed(2)} |
| coupon freeze+redeem pairs/s (two requests each) vs bare fastify POST; p50 / p99 per pair | ${coupons.pairs.rps.toFixed(0)}; ${coupons.pairs.p50.toFixed(1)} / ${coupons.pairs.p99.toFixed(1)} ms | ${coupons.bare.rps.toFixed(0)} | ${(coupons.pairs.rps / coupons.bare.rps).toFixed(2)} |
| payouts/s through the provider vs its configured capacity | ${payouts.perSec.toFixed(0)} | ${PAYOUT_CAPACITY} | ${(payouts.perSec / PAYOUT_CAPACITY).toFixed(2)} |
| replay-audit events/s (whole log of ${audit.events}) vs raw kafkajs consume + Avro decode | ${audit.auditPerSec.toFixed(0)} | ${audit.rawPerSec.toFixed(0)} | ${audit.ratio.toFixed(2)} |
| ${audit.events}-event audit: time / peak RSS (raw read: peak RSS) | ${audit.auditSeconds.toFixed(1)} s / ${audit.auditPeakRssMiB} MiB | ${audit.rawPeakRssMiB} MiB | |
| CPU seconds of the read, all threads | ${audit.auditCpuSeconds.toFixed(1)} | ${audit.rawCpuSeconds.toFixed(1)} | ${(audit.auditCpuSeconds / audit.rawCpuSeconds).toFixed(2)}× |
| peak RSS MiB: api / projector / load generator / payouts | ${apiPeak} / ${projectorPeak} / ${result.peakRssMiB.loadGenerator} / ${payouts.processorPeakMiB} | | |`);
}

/** Wallet reads: balance and first statement page for 10,000 users who hold rewards, each with its own user token. */
async function benchWalletReads() {
  const api = run('bin/api.ts', { WALLET_CACHE_MS: '1000' });
  const bare = run('bench/bare-server.ts');
  await waitHttp(`http://127.0.0.1:${API_PORT}/health`);
  await waitHttp(`http://127.0.0.1:${BARE_PORT}/bare/x`);
  const tokens = Array.from({ length: READ_USERS }, (_, i) => `Bearer ${signUserToken(userKey, 'bench-user', `u-${i}`, { ttlSec: 3600 })}`);
  const pick = (i: number) => (i * 7919) % READ_USERS;
  const balanceReq = (i: number) => ({ method: 'GET' as const, path: `/v1/wallets/u-${pick(i)}`, headers: { authorization: tokens[pick(i)]! } });
  const statementReq = (i: number) => ({ method: 'GET' as const, path: `/v1/wallets/u-${pick(i)}/statement`, headers: { authorization: tokens[pick(i)]! } });
  const bareReq = (i: number) => ({ method: 'GET' as const, path: `/bare/u-${pick(i)}`, headers: { authorization: tokens[pick(i)]! } });
  log('wallet reads: warming up');
  await runLoad({ origin: `http://127.0.0.1:${API_PORT}`, durationMs: 3000, concurrency: CONCURRENCY, request: balanceReq });
  await runLoad({ origin: `http://127.0.0.1:${BARE_PORT}`, durationMs: 2000, concurrency: CONCURRENCY, request: bareReq });
  const bares: LoadResult[] = [];
  const balances: LoadResult[] = [];
  const statements: LoadResult[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    bares.push(await runLoad({ origin: `http://127.0.0.1:${BARE_PORT}`, durationMs: ROUND_MS, concurrency: CONCURRENCY, request: bareReq }));
    balances.push(await runLoad({ origin: `http://127.0.0.1:${API_PORT}`, durationMs: ROUND_MS, concurrency: CONCURRENCY, request: balanceReq }));
    statements.push(await runLoad({ origin: `http://127.0.0.1:${API_PORT}`, durationMs: ROUND_MS, concurrency: CONCURRENCY, request: statementReq }));
    log(`round ${r + 1}: balance ${balances[r]!.rps.toFixed(0)}/s p99 ${balances[r]!.p99.toFixed(1)}ms (errors ${balances[r]!.errors}); statement ${statements[r]!.rps.toFixed(0)}/s p99 ${statements[r]!.p99.toFixed(1)}ms (errors ${statements[r]!.errors}); bare ${bares[r]!.rps.toFixed(0)}/s`);
  }
  const apiPeak = await peakRssMiB(api.pid!);
  await stop(api);
  await stop(bare);
  // The same balance reads with the cache off: every read reaches Postgres (batched).
  const uncachedApi = run('bin/api.ts', { WALLET_CACHE_MS: '0' });
  await waitHttp(`http://127.0.0.1:${API_PORT}/health`);
  await runLoad({ origin: `http://127.0.0.1:${API_PORT}`, durationMs: 3000, concurrency: CONCURRENCY, request: balanceReq });
  const uncached: LoadResult[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    uncached.push(await runLoad({ origin: `http://127.0.0.1:${API_PORT}`, durationMs: ROUND_MS, concurrency: CONCURRENCY, request: balanceReq }));
    log(`round ${r + 1}: balance without cache ${uncached[r]!.rps.toFixed(0)}/s p99 ${uncached[r]!.p99.toFixed(1)}ms (errors ${uncached[r]!.errors})`);
  }
  await stop(uncachedApi);
  const m = (xs: LoadResult[]) => ({ rps: median(xs.map((x) => x.rps)), p50: median(xs.map((x) => x.p50)), p99: median(xs.map((x) => x.p99)), errors: xs.reduce((s, x) => s + x.errors, 0) });
  return { balance: m(balances), balanceUncached: m(uncached), statement: m(statements), bare: m(bares), apiPeakMiB: apiPeak };
}

/**
 * Payouts: PAYOUTS withdrawals (credited rewards, then a withdrawal each) are produced and
 * projected first; then the payout processor starts against the simulator, both set to
 * PAYOUT_CAPACITY/s, and is timed from its first settlement to its last.
 */
async function benchPayouts(pool: pg.Pool) {
  const rt = await openRuntime('bench-payouts', { namespace: ns });
  const projector = run('bin/projector.ts');
  const provider = run('bin/payment-provider.ts');
  try {
    const now = Date.now();
    const events = Array.from({ length: PAYOUTS }, (_, i) => {
      const userId = `pay-${i}`;
      const tokenId = tokenIdFor('bench-rain', `pay-${i}`);
      const issued = {
        eventId: tokenId, occurredAt: now, activityId: 'bench-rain', traceId: 'bench', tokenId, orderNo: `pay-${i}`, userId, sceneId: 'rain',
        amount: 100, currency: 'CNY' as const, signature: 'bench', keyId: 'bench', grantedBy: 'bench', clientAddress: '-', requestId: 'bench',
        // Budget slices (ledger I10) far above what the API's grants reserve, within the activity's funding.
        budgetSliceEnd: 1e14 + (i + 1) * 100, budgetFunded: 1e15,
      };
      const withdrawalId = withdrawalIdFor(userId, 'bench');
      return {
        issued, credited: creditFor(issued, now),
        withdrawal: { eventId: withdrawalId, occurredAt: now, activityId: '', traceId: 'bench', withdrawalId, userId, amount: 100, currency: 'CNY' as const, requestedBy: userId, clientAddress: '-', requestId: 'bench' },
      };
    });
    await rt.publisher.publishMany('TokenIssued', events.map((e) => e.issued));
    await rt.publisher.publishMany('TokenCredited', events.map((e) => e.credited));
    await rt.publisher.publishMany('WithdrawalRequested', events.map((e) => e.withdrawal));
    log(`payouts: ${PAYOUTS} withdrawals produced; waiting for the projection`);
    const count = async (status: string) => Number((await pool.query(`select count(*)::int as n from withdrawals where status = $1 and user_id like 'pay-%'`, [status])).rows[0].n);
    while ((await count('withdrawing')) < PAYOUTS) await new Promise((r) => setTimeout(r, 200));
    await waitHttp(`http://127.0.0.1:${PROVIDER_PORT}/v1/payouts/none`);
    const payouts = run('bin/payouts.ts');
    let first = 0;
    let peak: number | null = null;
    for (;;) {
      const n = await count('settled');
      if (n > 0 && !first) first = performance.now();
      peak = (await peakRssMiB(payouts.pid!)) ?? peak;
      if (n >= PAYOUTS) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const seconds = (performance.now() - first) / 1000;
    await stop(payouts);
    const stats = await fetch(`http://127.0.0.1:${PROVIDER_PORT}/admin/stats`, { headers: { authorization: `Bearer ${providerKey}` } }).then((r) => r.json()) as { overCapacity: number; paid: number };
    log(`payouts: ${PAYOUTS} settled in ${seconds.toFixed(1)} s; provider refused ${stats.overCapacity} for capacity`);
    return { payouts: PAYOUTS, seconds, perSec: PAYOUTS / seconds, capacityPerSec: PAYOUT_CAPACITY, providerPaid: stats.paid, providerOverCapacity: stats.overCapacity, processorPeakMiB: peak };
  } finally {
    await stop(projector);
    await stop(provider);
    await rt.close();
  }
}

try {
  await main();
} finally {
  await procs.stopAll('SIGKILL');
  const rt = await openRuntime('bench-cleanup', { namespace: ns });
  await removeNamespace(rt).catch((err) => log(`cleanup failed: ${err}`));
  await rt.close();
}
process.exit(0);
