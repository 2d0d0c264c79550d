import t from 'tap';
import { randomUUID } from 'node:crypto';
import { buildApp } from '../api/app.ts';
import { DrawQuotas } from '../infra/draw-quotas.ts';
import { candidatesAt, compileCampaign } from '../domain/campaigns.ts';
import { startTestLedger, type TestLedger } from './helpers/ledger.ts';
import { campaign, draw, putConfig, scene, seeded } from './helpers/campaigns.ts';
import { signRequest } from '../api/auth/upstream-signature.ts';

const act = () => `cfg-${randomUUID().slice(0, 8)}`;
const prizes = [{ prizeId: 'p', name: 'p', weight: 1, quota: 1_000, itemId: 'x' }];

t.test('configuration: put, dry run, versions, an invalid one rejected with paths while the old stays in force, rollback', async (t) => {
  const l = await startTestLedger(t);
  const A = act();
  const v1 = campaign(A, [scene({ prizes })]);
  const schema = await l.admin('GET', '/v1/admin/campaigns/schema');
  t.equal(schema.json.$id, 'https://hongbao-ledger.dev/schemas/campaign-config.schema.json', 'the JSON Schema is published');

  const dry = await l.admin('POST', `/v1/admin/campaigns/${A}/config/validate`, v1);
  t.same(dry.json, { valid: true });
  t.equal((await l.admin('GET', `/v1/admin/campaigns/${A}/config/versions`)).statusCode, 404, 'a dry run stores nothing');
  t.equal(await putConfig(l, v1), 1);

  const broken = structuredClone(v1) as any;
  broken.children[0].scenes[0].pool.prizes[0].weight = -1;
  broken.children[0].scenes[0].pool.prizes.push({ prizeId: 'p', name: 'again', weight: 1, quota: 1, itemId: 'y', color: 'red' });
  broken.children[0].endsAt = 'tomorrow';
  const rejected = await l.admin('PUT', `/v1/admin/campaigns/${A}/config`, broken);
  t.equal(rejected.statusCode, 422);
  t.equal(rejected.json.code, 'INVALID_CONFIG');
  t.same(rejected.json.details.errors, [
    { path: '/children/0/endsAt', message: 'must be a date-time (e.g. 2027-01-28T20:00:00+08:00)' },
    { path: '/children/0/scenes/0/pool/prizes/0/weight', message: 'must be >= 0' },
    { path: '/children/0/scenes/0/pool/prizes/1/color', message: 'is not a field of this object' },
  ], 'each error names its path and what is wrong');

  const semantic = structuredClone(v1) as any;
  semantic.children.push({ ...structuredClone(semantic.children[0]), childId: 'gray', stage: 'gray' });
  semantic.children[0].scenes[0].pool.prizes.push({ prizeId: 'p', name: 'again', weight: 1, quota: 1, amount: 5 });
  const dryBad = await l.admin('POST', `/v1/admin/campaigns/${A}/config/validate`, semantic);
  t.equal(dryBad.statusCode, 422);
  t.same(dryBad.json.details.errors, [
    { path: '/children/0/scenes/0/pool/prizes/1/prizeId', message: '"p" is already used by /children/0/scenes/0/pool/prizes/0' },
    { path: '/children/0/scenes/0/pool/prizes/1', message: 'a prize in a goods scene needs an itemId' },
    { path: '/children/0/scenes/0/pool/prizes/1/amount', message: 'a prize in a goods scene grants an item, not an amount' },
    { path: '/children/1/startsAt', message: `the window overlaps child "formal" (${v1.children[0]!.startsAt} to ${v1.children[0]!.endsAt}); one child is live at a time` },
  ], 'rules beyond the schema are path-precise too');
  const wrongId = await l.admin('PUT', `/v1/admin/campaigns/${A}/config`, { ...v1, activityId: 'other' });
  t.equal(wrongId.statusCode, 422);

  const still = await draw(l, A, 'u-1', 'd-1');
  t.match(still.json, { outcome: 'won', configVersion: 1 }, 'the rejected configurations changed nothing: version 1 is in force');

  const off = structuredClone(v1);
  off.children[0]!.scenes[0]!.pool.prizes[0]!.weight = 0;
  t.equal(await putConfig(l, off), 2);
  t.match((await draw(l, A, 'u-2', 'd-2')).json, { outcome: 'no_win', reason: 'pool_empty', configVersion: 2 }, 'rate 0 switches the prize off');
  const stale = await l.admin('PUT', `/v1/admin/campaigns/${A}/config?expectedVersion=1`, v1);
  t.equal(stale.statusCode, 409, 'a put based on an old version is refused');
  t.equal(stale.json.code, 'VERSION_CONFLICT');

  const back = await l.admin('POST', `/v1/admin/campaigns/${A}/config/rollback`, { toVersion: 1 });
  t.equal(back.statusCode, 201);
  t.same(back.json, { activityId: A, version: 3, rolledBackTo: 1 });
  t.match((await draw(l, A, 'u-3', 'd-3')).json, { outcome: 'won', configVersion: 3 }, 'the rollback is in force');
  const versions = await l.admin('GET', `/v1/admin/campaigns/${A}/config/versions`);
  t.equal(versions.json.current, 3);
  t.same(versions.json.versions.map((v: any) => [v.version, v.rolledBackTo]), [[3, 1], [2, null], [1, null]], 'the history shows the rollback');
  t.same((await l.admin('GET', `/v1/admin/campaigns/${A}/config`)).json.config, v1);
  t.equal((await l.admin('POST', `/v1/admin/campaigns/${A}/config/rollback`, { toVersion: 9 })).json.code, 'UNKNOWN_VERSION');
  const big = campaign(A, Array.from({ length: 50 }, (_, i) => scene({
    sceneId: `scene-${i}`, prizes: Array.from({ length: 100 }, (_, j) => ({ prizeId: `prize-${j}`, name: `Prize ${j}`, weight: 1, quota: 1_000, itemId: `item-${j}` })),
  })));
  t.ok(JSON.stringify(big).length > 400_000, 'a configuration of 50 scenes × 100 prizes');
  t.equal((await l.admin('PUT', `/v1/admin/campaigns/${A}/config`, big)).statusCode, 201, 'fits the configuration routes\' body limit');
  const noAuth = await l.app.inject({ method: 'PUT', url: `/v1/admin/campaigns/${A}/config`, payload: v1 });
  t.equal(noAuth.statusCode, 401);
});

t.test('a change of configuration reaches another running instance within 10 s, without a restart', async (t) => {
  const l = await startTestLedger(t, { config: { campaignPollMs: 2_000 } });
  const other = await buildApp(l.rt, l.secrets);
  t.teardown(() => other.close());
  const viaOther = async (drawId: string) => {
    const payload = JSON.stringify({ activityId: A, sceneId: 'shake', userId: `u-${drawId}`, drawId });
    const res = await other.inject({ method: 'POST', url: '/v1/draws', payload, headers: { 'content-type': 'application/json', ...signRequest(l.upstreamKey, 'POST', '/v1/draws', payload) } });
    return JSON.parse(res.body);
  };
  const A = act();
  await putConfig(l, campaign(A, [scene({ prizes })]));
  await new Promise((r) => setTimeout(r, 2_500));
  t.match(await viaOther('o-1'), { outcome: 'won', configVersion: 1 });
  const off = campaign(A, [scene({ prizes: [{ ...prizes[0]!, weight: 0 }] })]);
  await putConfig(l, off);
  const changedAt = Date.now();
  let seen: any;
  for (let i = 2; ; i++) {
    seen = await viaOther(`o-${i}`);
    if (seen.configVersion === 2 || Date.now() - changedAt > 10_000) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const took = Date.now() - changedAt;
  t.match(seen, { configVersion: 2, outcome: 'no_win', reason: 'pool_empty' }, 'the other instance switched the prize off');
  t.ok(took <= 10_000, `within ${took} ms`);
});

t.test('the outcome follows the weights (chi-square, fixed seed), through the real Redis script', async (t) => {
  const l = await startTestLedger(t, { projector: false });
  const A = act();
  const weights = { a: 50, b: 30, c: 15, d: 5 };
  const noWin = 100;
  const config = campaign(A, [scene({ noWinWeight: noWin, prizes: Object.entries(weights).map(([prizeId, weight]) => ({ prizeId, name: prizeId, weight, quota: 1_000_000, itemId: prizeId })) })]);
  const c = compileCampaign(config, 1);
  const sc = c.children[0]!.scenes.get('shake')!;
  const quotas = new DrawQuotas(l.rt.redis, l.ns, 600);
  await quotas.restore(A, 'formal', async () => {}, async () => ({ issued: new Map(), wins: new Map() }), 5_000);
  const random = seeded(20270128);
  const N = 20_000;
  const counts = new Map<string, number>();
  const at = Date.now();
  for (let i = 0; i < N; i += 500) {
    const batch = await Promise.all(Array.from({ length: 500 }, (_, j) => {
      const candidates = candidatesAt(sc, at);
      return quotas.draw(A, 'formal', {
        drawId: `x-${i + j}`, userId: `u-${i + j}`, sceneId: 'shake', fingerprint: 'f', at, configVersion: 1, rateLimit: null, winLimit: null,
        noWinWeight: noWin, candidates, randoms: candidates.map(() => random()).concat(random()),
      });
    }));
    for (const r of batch) {
      if (r.status !== 'drawn') throw new Error(r.status);
      const k = r.record.outcome === 'won' ? r.record.prizeId : 'none';
      counts.set(k, (counts.get(k) ?? 0) + 1);
    }
  }
  const total = noWin + 100;
  const expected: Record<string, number> = { none: (N * noWin) / total };
  for (const [k, w] of Object.entries(weights)) expected[k] = (N * w) / total;
  let chi2 = 0;
  for (const [k, e] of Object.entries(expected)) chi2 += ((counts.get(k) ?? 0) - e) ** 2 / e;
  // 4 degrees of freedom; 18.47 is the 0.999 quantile.
  t.ok(chi2 < 18.47, `chi-square ${chi2.toFixed(2)} < 18.47 (counts ${JSON.stringify(Object.fromEntries(counts))})`);
  // And it can fail: the same counts against weights the pool does not have.
  let wrong = 0;
  const skewed: Record<string, number> = { none: N * 0.5, a: N * 0.2, b: N * 0.2, c: N * 0.05, d: N * 0.05 };
  for (const [k, e] of Object.entries(skewed)) wrong += ((counts.get(k) ?? 0) - e) ** 2 / e;
  t.ok(wrong > 18.47, `the test tells a different distribution apart (chi-square ${wrong.toFixed(0)})`);
});
