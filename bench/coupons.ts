// The coupon benchmark: gift-pack grants (POST /v1/gift-packs/grants: a signed request, three
// coupons' stock taken from bucketed counters, the pack's state and outbox in one Postgres
// transaction, GiftPackGranted produced with acks=all) and freeze+redeem pairs (two signed
// requests on one coupon, each a row-locked decision, an outbox row and a produce), against a
// bare fastify POST route in the same run. Run alone with `tsx bench/coupons.ts`, or as part
// of `npm run bench`.
import { fileURLToPath } from 'node:url';
import { Pool } from 'undici';
import { removeNamespace } from '../infra/runtime.ts';
import { signRequest } from '../api/auth/upstream-signature.ts';
import { journalFor } from '../infra/journal.ts';
import { CouponCommands } from '../infra/coupon-store.ts';
import { benchNamespace, processGroup, waitHttp } from './processes.ts';
import { runLoad, median, summarise, type LoadResult } from './load.ts';

const log = (s: string) => process.stderr.write(`[bench:coupons] ${s}\n`);
const API_PORT = 3130;
const BARE_PORT = 3131;

export interface Figure { rps: number; p50: number; p99: number; errors: number }
export interface CouponBench { grants: Figure; pairs: Figure; bare: Figure; rounds: { grants: number[]; pairs: number[]; bare: number[] } }

export async function benchCoupons(rounds: number, roundMs: number, concurrency: number): Promise<CouponBench> {
  const { ns, rt, upstream, adminToken, env } = await benchNamespace('bench_cp', { api: API_PORT, bare: BARE_PORT });
  const procs = processGroup(env);
  try {
    procs.run('bin/api.ts');
    procs.run('bench/bare-server.ts');
    await waitHttp(`http://127.0.0.1:${API_PORT}/health`);
    await waitHttp(`http://127.0.0.1:${BARE_PORT}/bare/x`);
    const admin = { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' };
    const act = await fetch(`http://127.0.0.1:${API_PORT}/v1/admin/activities/bench`, {
      method: 'PUT', headers: admin, body: JSON.stringify({ name: 'bench', currency: 'CNY', maxSingleGrant: 20_000 }),
    });
    if (act.status !== 200) throw new Error(`activity put failed: ${await act.text()}`);
    const slots = [['five', 500], ['ten', 1000], ['twenty', 2000]] as const;
    for (const [slot, faceValue] of slots) {
      for (const platform of ['ios', 'android']) {
        const r = await fetch(`http://127.0.0.1:${API_PORT}/v1/admin/coupon-templates/bench.${platform}.${slot}`, {
          method: 'PUT', headers: admin, body: JSON.stringify({ platform, faceValue, currency: 'CNY', validDays: 30, totalStock: 100_000_000 }),
        });
        if (r.status !== 200) throw new Error(`template put failed: ${await r.text()}`);
      }
    }
    const packPut = await fetch(`http://127.0.0.1:${API_PORT}/v1/admin/gift-packs/bench`, {
      method: 'PUT', headers: admin, body: JSON.stringify({ name: 'bench', slots: slots.map(([slot]) => ({ slot, ios: `bench.ios.${slot}`, android: `bench.android.${slot}` })) }),
    });
    if (packPut.status !== 200) throw new Error(`pack put failed: ${await packPut.text()}`);

    let seq = 0;
    const signed = (path: string, body: string) => ({ method: 'POST' as const, path, body, headers: { 'content-type': 'application/json', ...signRequest(upstream, 'POST', path, body) } });
    const grantReq = () => {
      const n = seq++;
      return signed('/v1/gift-packs/grants', JSON.stringify({ activityId: 'bench', orderNo: `o-${n}`, userId: `u-${n}`, packId: 'bench', platform: n % 2 ? 'ios' : 'android' }));
    };
    const bareReq = () => signed('/bare', JSON.stringify({ activityId: 'bench', orderNo: `o-${seq++}`, userId: 'u', packId: 'bench', platform: 'ios' }));
    const api = `http://127.0.0.1:${API_PORT}`;
    const bare = `http://127.0.0.1:${BARE_PORT}`;
    log('warming up');
    await runLoad({ origin: api, durationMs: 3000, concurrency, request: grantReq });
    await runLoad({ origin: bare, durationMs: 2000, concurrency, request: bareReq });

    const grants: LoadResult[] = [];
    const bares: LoadResult[] = [];
    for (let r = 0; r < rounds; r++) {
      bares.push(await runLoad({ origin: bare, durationMs: roundMs, concurrency, request: bareReq }));
      grants.push(await runLoad({ origin: api, durationMs: roundMs, concurrency, request: grantReq }));
      log(`round ${r + 1}: grants ${grants[r]!.rps.toFixed(0)}/s p50 ${grants[r]!.p50.toFixed(1)}ms p99 ${grants[r]!.p99.toFixed(1)}ms (errors ${grants[r]!.errors}); bare ${bares[r]!.rps.toFixed(0)}/s`);
    }

    // Packs to use: claimed through the command side (setup, not measured).
    const want = Math.ceil((rounds * roundMs / 1000) * 600 / 3) + concurrency;
    const { rows } = await rt.pool.query<{ grant_id: string; user_id: string; record: { coupons: { couponId: string; platform: string }[] } }>(
      'select grant_id, user_id, record from pack_states order by grant_id limit $1', [want],
    );
    const commands = new CouponCommands({ pool: rt.pool, journal: journalFor(rt), lowStockPercent: 10 });
    log(`claiming ${rows.length} packs`);
    for (let i = 0; i < rows.length; i += 20) await Promise.all(rows.slice(i, i + 20).map((r) => commands.claim(r.user_id, r.grant_id)));
    const coupons = rows.flatMap((r) => r.record.coupons.map((c) => ({ userId: r.user_id, couponId: c.couponId, platform: c.platform })));

    const pairs: LoadResult[] = [];
    let next = 0;
    for (let r = 0; r < rounds; r++) {
      pairs.push(await runPairs(api, roundMs, concurrency, () => {
        const c = coupons[next++];
        if (!c) throw new Error('out of claimed coupons: raise the number of packs claimed');
        const paymentId = `pay-${next}`;
        return [
          signed('/v1/coupons/freeze', JSON.stringify({ userId: c.userId, couponId: c.couponId, paymentId, platform: c.platform })),
          signed('/v1/coupons/redeem', JSON.stringify({ userId: c.userId, couponId: c.couponId, paymentId })),
        ];
      }));
      log(`round ${r + 1}: freeze+redeem ${pairs[r]!.rps.toFixed(0)} pairs/s p50 ${pairs[r]!.p50.toFixed(1)}ms p99 ${pairs[r]!.p99.toFixed(1)}ms (errors ${pairs[r]!.errors})`);
    }
    const fig = (xs: LoadResult[]): Figure => ({
      rps: median(xs.map((x) => x.rps)), p50: median(xs.map((x) => x.p50)), p99: median(xs.map((x) => x.p99)), errors: xs.reduce((s, x) => s + x.errors, 0),
    });
    return {
      grants: fig(grants), pairs: fig(pairs), bare: fig(bares),
      rounds: { grants: grants.map((x) => Math.round(x.rps)), pairs: pairs.map((x) => Math.round(x.rps)), bare: bares.map((x) => Math.round(x.rps)) },
    };
  } finally {
    await procs.stopAll();
    await removeNamespace(rt).catch((err) => log(`cleanup failed: ${err}`));
    await rt.close();
  }
}

type Req = { method: 'POST'; path: string; body: string; headers: Record<string, string> };

/** Closed loop like runLoad, but each unit is two requests in sequence; latency is the pair's. */
async function runPairs(origin: string, durationMs: number, concurrency: number, pair: () => Req[]): Promise<LoadResult> {
  const pool = new Pool(origin, { connections: concurrency, pipelining: 1 });
  const latencies: number[] = [];
  const statusCounts: Record<string, number> = {};
  let errors = 0;
  const start = performance.now();
  const end = start + durationMs;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < end) {
      const t0 = performance.now();
      let failed = false;
      for (const req of pair()) {
        const res = await pool.request(req).catch(() => null);
        if (!res) { failed = true; break; }
        await res.body.dump();
        statusCounts[res.statusCode] = (statusCounts[res.statusCode] ?? 0) + 1;
        if (res.statusCode !== 200) { failed = true; break; }
      }
      if (failed) errors++;
      latencies.push(performance.now() - t0);
    }
  }));
  const seconds = (performance.now() - start) / 1000;
  await pool.close();
  return summarise(latencies, errors, statusCounts, seconds);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  console.log(JSON.stringify(await benchCoupons(Number(process.env.BENCH_ROUNDS ?? 3), Number(process.env.BENCH_ROUND_SECONDS ?? 10) * 1000, Number(process.env.BENCH_CONCURRENCY ?? 50)), null, 2));
  process.exit(0);
}
