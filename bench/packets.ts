// The red-packet grab benchmark: grabs/s and latency on one hot packet (every grab a new
// user, every grab a claim), spread over many packets, and turned away from an empty packet,
// each against a bare fastify POST route in the same run. Every request carries a user
// token (signed before the rounds; a grabber is new to each hot packet, so the API verifies
// nearly every token it sees).
// Run alone with `tsx bench/packets.ts`, or as part of `npm run bench`.
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { loadConfig } from '../infra/config.ts';
import { openRuntime, removeNamespace, setupNamespace } from '../infra/runtime.ts';
import { generateSigningKeyPem, publicKeyOf } from '../domain/tokens.ts';
import { signUserToken } from '../api/auth/user-jwt.ts';
import { creditFor, fundingEventIdFor, tokenIdFor } from '../domain/grants.ts';
import { processGroup, waitHttp } from './processes.ts';
import { runLoad, median, peakRssMiB, type LoadResult } from './load.ts';

const log = (s: string) => process.stderr.write(`[bench:packets] ${s}\n`);
const API_PORT = 3110;
const BARE_PORT = 3111;
/** Shares of each hot packet: more than a round can grab, so every grab of the round is a claim. */
const HOT_SHARES = Number(process.env.BENCH_HOT_SHARES ?? 100_000);
const MANY_PACKETS = Number(process.env.BENCH_MANY_PACKETS ?? 2_000);
/** Distinct grabbers: more than one hot round can reach, so each grab of a round is a new user. */
const GRABBERS = Number(process.env.BENCH_GRABBERS ?? 100_000);

export interface Figure { rps: number; p50: number; p99: number; errors: number }
export interface GrabBench {
  hot: Figure;
  many: Figure;
  turnedAway: Figure;
  bare: Figure;
  apiPeakMiB: number | null;
  rounds: { hot: number[]; many: number[]; turnedAway: number[]; bare: number[] };
}

export async function benchGrabs(rounds: number, roundMs: number, concurrency: number): Promise<GrabBench> {
  const ns = `bench_pk_${Date.now().toString(36)}`;
  const cfg = loadConfig({ namespace: ns });
  await setupNamespace(cfg);
  const rt = await openRuntime('bench-packets', { namespace: ns });
  const userKey = generateSigningKeyPem();
  const env = {
    ...process.env, LEDGER_NAMESPACE: ns, API_PORT: String(API_PORT), PORT: String(BARE_PORT), LOG_LEVEL: 'warn',
    UPSTREAM_KEYS: `bench=${randomBytes(16).toString('hex')}`, ADMIN_TOKEN: randomBytes(16).toString('hex'), TOKEN_SIGNING_KEY: generateSigningKeyPem(),
    USER_TOKEN_PUBLIC_KEYS: JSON.stringify({ 'bench-user': publicKeyOf(userKey).export({ type: 'spki', format: 'pem' }) }),
    PACKET_MAX_COUNT: String(HOT_SHARES), PACKET_MAX_AMOUNT: String(HOT_SHARES * 10),
  };
  const procs = processGroup(env);
  const run = (script: string) => procs.run(script);
  const pool = new pg.Pool({ connectionString: cfg.databaseUrl, options: `-c search_path=${ns}` });
  const bearer = (userId: string) => `Bearer ${signUserToken(userKey, 'bench-user', userId, { ttlSec: 3600 })}`;
  try {
    run('bin/projector.ts');
    const api = run('bin/api.ts');
    run('bench/bare-server.ts');
    // Senders with money: a funded activity, a credited grant each.
    const packetsNeeded = MANY_PACKETS + rounds + 2;
    const now = Date.now();
    await rt.publisher.publish('BudgetFunded', { eventId: fundingEventIdFor('bench-pk', 'f'), occurredAt: now, activityId: 'bench-pk', traceId: 'b', fundingId: 'f', amount: 1e13, currency: 'CNY', fundedBy: 'bench' });
    const senders = Array.from({ length: packetsNeeded }, (_, i) => `snd-${i}`);
    const issued = senders.map((userId, i) => {
      const tokenId = tokenIdFor('bench-pk', userId);
      return {
        eventId: tokenId, occurredAt: now, activityId: 'bench-pk', traceId: 'b', tokenId, orderNo: userId, userId, sceneId: 's', amount: HOT_SHARES * 10,
        currency: 'CNY' as const, signature: 'b', keyId: 'b', grantedBy: 'b', clientAddress: '-', requestId: 'b',
        // The next budget slice of the activity each, as the journal gives them (ledger I10).
        budgetSliceEnd: (i + 1) * HOT_SHARES * 10, budgetFunded: 1e13,
      };
    });
    await rt.publisher.publishMany('TokenIssued', issued);
    await rt.publisher.publishMany('TokenCredited', issued.map((t) => creditFor(t, now)));
    await waitHttp(`http://127.0.0.1:${API_PORT}/health`);
    await waitHttp(`http://127.0.0.1:${BARE_PORT}/bare/x`);
    for (;;) {
      const { rows } = await pool.query(`select count(*)::int as n from account_balances where account like 'user:snd-%:available' and balance > 0`);
      if (rows[0].n >= packetsNeeded) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    const create = async (sender: string, amount: number, count: number): Promise<string> => {
      const res = await fetch(`http://127.0.0.1:${API_PORT}/v1/packets`, {
        method: 'POST', headers: { authorization: bearer(sender), 'content-type': 'application/json', 'idempotency-key': `bench-${sender}` },
        body: JSON.stringify({ amount, currency: 'CNY', count }),
      });
      if (res.status !== 201) throw new Error(`packet creation failed: ${res.status} ${await res.text()}`);
      return ((await res.json()) as { packetId: string }).packetId;
    };
    log(`creating ${MANY_PACKETS} packets of 100 shares and ${rounds + 1} hot packets of ${HOT_SHARES}`);
    const many: string[] = [];
    for (let i = 0; i < MANY_PACKETS; i += 50) many.push(...(await Promise.all(senders.slice(i, Math.min(i + 50, MANY_PACKETS)).map((s) => create(s, 10_000, 100)))));
    const hot = await Promise.all(senders.slice(MANY_PACKETS, MANY_PACKETS + rounds + 1).map((s) => create(s, HOT_SHARES * 2, HOT_SHARES)));
    const empty = await create(senders[packetsNeeded - 1]!, 100, 1);
    await fetch(`http://127.0.0.1:${API_PORT}/v1/packets/${empty}/grab`, { method: 'POST', headers: { authorization: bearer('emptier') } });

    log(`signing ${GRABBERS} user tokens`);
    const tokens = Array.from({ length: GRABBERS }, (_, i) => bearer(`grabber-${i}`));
    let user = 0;
    const grab = (packetId: (i: number) => string) => () => {
      const i = user++ % GRABBERS;
      return { method: 'POST' as const, path: `/v1/packets/${packetId(i)}/grab`, headers: { authorization: tokens[i]! } };
    };
    const bareReq = () => {
      const i = user++ % GRABBERS;
      return { method: 'POST' as const, path: `/bare/packets/${hot[0]}/grab`, headers: { authorization: tokens[i]! } };
    };
    const fresh = () => { user = 0; };
    const api1 = `http://127.0.0.1:${API_PORT}`;
    const bare1 = `http://127.0.0.1:${BARE_PORT}`;
    const claimed = (s: number) => s === 201;
    log('warming up');
    await runLoad({ origin: api1, durationMs: 3000, concurrency, request: grab(() => hot[rounds]!), ok: claimed });
    fresh();
    await runLoad({ origin: bare1, durationMs: 2000, concurrency, request: bareReq });
    const res = { hot: [] as LoadResult[], many: [] as LoadResult[], turnedAway: [] as LoadResult[], bare: [] as LoadResult[] };
    // The turned-away grabs (an empty packet) come from the same grabbers.
    for (let r = 0; r < rounds; r++) {
      res.bare.push(await runLoad({ origin: bare1, durationMs: roundMs, concurrency, request: bareReq }));
      fresh();
      res.hot.push(await runLoad({ origin: api1, durationMs: roundMs, concurrency, request: grab(() => hot[r]!), ok: claimed }));
      fresh();
      // Each grabber meets a different packet in each round, so these grabs are claims too.
      res.many.push(await runLoad({ origin: api1, durationMs: roundMs, concurrency, request: grab((i) => many[(i + 37 * r) % many.length]!), ok: claimed }));
      res.turnedAway.push(await runLoad({ origin: api1, durationMs: roundMs, concurrency, request: grab(() => empty), ok: (s) => s === 409 }));
      const f = (x: LoadResult) => `${x.rps.toFixed(0)}/s p99 ${x.p99.toFixed(1)}ms (errors ${x.errors})`;
      log(`round ${r + 1}: hot ${f(res.hot[r]!)}; many ${f(res.many[r]!)}; turned away ${f(res.turnedAway[r]!)}; bare ${f(res.bare[r]!)}`);
    }
    const apiPeakMiB = await peakRssMiB(api.pid!);
    const m = (xs: LoadResult[]): Figure => ({ rps: median(xs.map((x) => x.rps)), p50: median(xs.map((x) => x.p50)), p99: median(xs.map((x) => x.p99)), errors: xs.reduce((s, x) => s + x.errors, 0) });
    return {
      hot: m(res.hot), many: m(res.many), turnedAway: m(res.turnedAway), bare: m(res.bare), apiPeakMiB,
      rounds: { hot: res.hot.map((x) => Math.round(x.rps)), many: res.many.map((x) => Math.round(x.rps)), turnedAway: res.turnedAway.map((x) => Math.round(x.rps)), bare: res.bare.map((x) => Math.round(x.rps)) },
    };
  } finally {
    await procs.stopAll();
    await pool.end();
    await removeNamespace(rt).catch((err) => log(`cleanup failed: ${err}`));
    await rt.close();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  console.log(JSON.stringify(await benchGrabs(Number(process.env.BENCH_ROUNDS ?? 3), Number(process.env.BENCH_ROUND_SECONDS ?? 10) * 1000, Number(process.env.BENCH_CONCURRENCY ?? 50)), null, 2));
  process.exit(0);
}
