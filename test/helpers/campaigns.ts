import type { CampaignConfig, ChildConfig, PrizeConfig, SceneConfig } from '../../domain/campaigns.ts';
import type { TestLedger } from './ledger.ts';

/** Seeded uniform numbers in [0, 1) (mulberry32): draws a test can reproduce. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

/** A clock a test moves by hand. */
export function manualClock(start: number): { now: () => number; set(at: number): void } {
  let at = start;
  return { now: () => at, set: (t) => { at = t; } };
}

export const iso = (ms: number) => new Date(ms).toISOString();

export function scene(overrides: Partial<SceneConfig> & { prizes: PrizeConfig[]; noWinWeight?: number }): SceneConfig {
  const { prizes, noWinWeight, ...rest } = overrides;
  return {
    sceneId: 'shake', awardType: 'goods', statementText: 'Spring shake', stockControl: true, reconcile: true,
    pool: { poolId: 'main', noWinWeight: noWinWeight ?? 0, prizes }, ...rest,
  };
}

/** A campaign with one child live from `from` for `hours`. */
export function campaign(activityId: string, scenes: SceneConfig[], from = Date.now() - 60_000, hours = 2, child: Partial<ChildConfig> = {}): CampaignConfig {
  return {
    activityId, name: `Campaign ${activityId}`, currency: 'CNY',
    children: [{ childId: 'formal', stage: 'formal', startsAt: iso(from), endsAt: iso(from + hours * 3_600_000), scenes, ...child }],
  };
}

export async function putConfig(l: TestLedger, config: CampaignConfig): Promise<number> {
  const r = await l.admin('PUT', `/v1/admin/campaigns/${config.activityId}/config`, config);
  if (r.statusCode !== 201) throw new Error(`config put failed: ${JSON.stringify(r.json)}`);
  return r.json.version;
}

export const draw = (l: TestLedger, activityId: string, userId: string, drawId: string, sceneId = 'shake') =>
  l.signed('POST', '/v1/draws', { activityId, sceneId, userId, drawId });
