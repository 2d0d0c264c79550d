// The lottery draw benchmark: POST /v1/draws (signed upstream requests, a weighted pick over a
// pool of cash and goods prizes with quotas and slice caps in Redis, a LotteryDrawn event per
// draw and a TokenIssued or GoodsGranted per win, acks=all) against a bare fastify POST route
// in the same run. Run alone with `tsx bench/draws.ts`, or as part of `npm run bench`.
import { fileURLToPath } from 'node:url';
import { removeNamespace } from '../infra/runtime.ts';
import { signRequest } from '../api/auth/upstream-signature.ts';
import type { CampaignConfig } from '../domain/campaigns.ts';
import { benchNamespace, processGroup, stopProcess, waitHttp } from './processes.ts';
import { runLoad, median, peakRssMiB, type LoadResult } from './load.ts';

const log = (s: string) => process.stderr.write(`[bench:draws] ${s}\n`);
const API_PORT = 3120;
const BARE_PORT = 3121;
const USERS = 100_000;

export interface DrawFigure { rps: number; p50: number; p99: number; errors: number; winShare: number }
export interface DrawBench { draws: DrawFigure; bare: { rps: number; p50: number; p99: number }; apiPeakMiB: number | null; rounds: { draws: number[]; bare: number[] } }

export async function benchDraws(rounds: number, roundMs: number, concurrency: number): Promise<DrawBench> {
  const { ns, rt, upstream, adminToken, env } = await benchNamespace('bench_dr', { api: API_PORT, bare: BARE_PORT });
  const procs = processGroup(env);
  const run = (script: string) => procs.run(script);
  try {
    // The projector runs while the first draw rebuilds the (empty) counters from the projection,
    // then stops: like the grant benchmark, the rounds measure the API, not the projector beside it.
    const projector = run('bin/projector.ts');
    const api = run('bin/api.ts');
    run('bench/bare-server.ts');
    await waitHttp(`http://127.0.0.1:${API_PORT}/health`);
    await waitHttp(`http://127.0.0.1:${BARE_PORT}/bare/x`);
    const admin = { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' };
    const now = Date.now();
    // A shake pool: mostly "no win", a cash prize under a slice cap, two virtual goods.
    const config: CampaignConfig = {
      activityId: 'bench-shake', name: 'bench', currency: 'CNY',
      children: [{
        childId: 'formal', stage: 'formal', startsAt: new Date(now - 60_000).toISOString(), endsAt: new Date(now + 86_400_000).toISOString(),
        scenes: [
          {
            sceneId: 'shake', awardType: 'cash', statementText: 'Shake', stockControl: true, reconcile: true,
            pool: { poolId: 'cash', noWinWeight: 60, prizes: [
              { prizeId: 'cash-88', name: '0.88', weight: 30, quota: 10_000_000, amount: 88, maxPerSlice: 10_000 },
              { prizeId: 'cash-888', name: '8.88', weight: 10, quota: 1_000, amount: 888, pacing: 'even' },
            ] },
          },
          {
            sceneId: 'goods', awardType: 'goods', statementText: 'Frames', stockControl: true, reconcile: true,
            pool: { poolId: 'goods', noWinWeight: 50, prizes: [
              { prizeId: 'frame', name: 'Frame', weight: 40, quota: 10_000_000, itemId: 'frame-gold' },
              { prizeId: 'bubble', name: 'Bubble', weight: 10, quota: 100, itemId: 'bubble-red' },
            ] },
          },
        ],
      }],
    };
    const put = await fetch(`http://127.0.0.1:${API_PORT}/v1/admin/campaigns/bench-shake/config`, { method: 'PUT', headers: admin, body: JSON.stringify(config) });
    if (put.status !== 201) throw new Error(`config put failed: ${await put.text()}`);
    const funded = await fetch(`http://127.0.0.1:${API_PORT}/v1/admin/activities/bench-shake:formal/fundings`, { method: 'POST', headers: admin, body: JSON.stringify({ fundingId: 'bench', amount: 1e13, currency: 'CNY' }) });
    if (funded.status !== 201) throw new Error(`funding failed: ${await funded.text()}`);

    let seq = 0;
    const drawReq = () => {
      const n = seq++;
      const body = JSON.stringify({ activityId: 'bench-shake', sceneId: n % 4 === 3 ? 'goods' : 'shake', userId: `u-${n % USERS}`, drawId: `d-${n}` });
      return { method: 'POST' as const, path: '/v1/draws', body, headers: { 'content-type': 'application/json', ...signRequest(upstream, 'POST', '/v1/draws', body) } };
    };
    const bareReq = () => {
      const n = seq++;
      const body = JSON.stringify({ activityId: 'bench-shake', sceneId: 'shake', userId: `u-${n % USERS}`, drawId: `d-${n}` });
      return { method: 'POST' as const, path: '/bare', body, headers: { 'content-type': 'application/json', ...signRequest(upstream, 'POST', '/bare', body) } };
    };
    const api1 = `http://127.0.0.1:${API_PORT}`;
    const bare1 = `http://127.0.0.1:${BARE_PORT}`;
    log('warming up');
    await runLoad({ origin: api1, durationMs: 3000, concurrency, request: drawReq });
    await runLoad({ origin: bare1, durationMs: 2000, concurrency, request: bareReq });
    const wonInWarmup = Object.values(await rt.redis.hgetall(`${ns}:{dr:bench-shake:formal}:issued`)).reduce((s, v) => s + Number(v), 0);
    await stopProcess(projector);
    let drawn = 0;
    const counted = () => {
      drawn++;
      return drawReq();
    };
    const draws: LoadResult[] = [];
    const bares: LoadResult[] = [];
    for (let r = 0; r < rounds; r++) {
      bares.push(await runLoad({ origin: bare1, durationMs: roundMs, concurrency, request: bareReq }));
      draws.push(await runLoad({ origin: api1, durationMs: roundMs, concurrency, request: counted }));
      log(`round ${r + 1}: draws ${draws[r]!.rps.toFixed(0)}/s p50 ${draws[r]!.p50.toFixed(1)}ms p99 ${draws[r]!.p99.toFixed(1)}ms (errors ${draws[r]!.errors}); bare ${bares[r]!.rps.toFixed(0)}/s`);
    }
    const apiPeakMiB = await peakRssMiB(api.pid!);
    const before = wonInWarmup;
    const issued = await rt.redis.hgetall(`${ns}:{dr:bench-shake:formal}:issued`);
    const wins = Object.values(issued).reduce((s, v) => s + Number(v), 0) - before;
    const m = (xs: LoadResult[], k: 'rps' | 'p50' | 'p99') => median(xs.map((x) => x[k]));
    return {
      draws: { rps: m(draws, 'rps'), p50: m(draws, 'p50'), p99: m(draws, 'p99'), errors: draws.reduce((s, x) => s + x.errors, 0), winShare: wins / drawn },
      bare: { rps: m(bares, 'rps'), p50: m(bares, 'p50'), p99: m(bares, 'p99') },
      apiPeakMiB,
      rounds: { draws: draws.map((x) => Math.round(x.rps)), bare: bares.map((x) => Math.round(x.rps)) },
    };
  } finally {
    await procs.stopAll();
    await removeNamespace(rt).catch((err) => log(`cleanup failed: ${err}`));
    await rt.close();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  console.log(JSON.stringify(await benchDraws(Number(process.env.BENCH_ROUNDS ?? 3), Number(process.env.BENCH_ROUND_SECONDS ?? 10) * 1000, Number(process.env.BENCH_CONCURRENCY ?? 50)), null, 2));
  process.exit(0);
}
