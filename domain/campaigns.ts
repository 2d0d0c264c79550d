import { createHash } from 'node:crypto';
import { deterministicId } from './ids.ts';
import { instantMs } from './instants.ts';
import type { Currency } from './money.ts';

/**
 * Lottery campaigns ("shake", QQ 2016): the configuration tree and the pure rules a draw
 * follows. The atomic part of a draw (weighted pick, quota and slice counters, win limits)
 * runs as one Redis script (infra/draw-quotas.ts) because every API instance shares those
 * counters; everything decidable from the configuration and the clock is decided here.
 *
 *   parent activity ─▶ child activities by time window (internal test, gray, formal launch)
 *     ─▶ scenes (award type, statement text, rate limit, stock control, reconcile)
 *       ─▶ one prize pool ─▶ prizes (weight, quota, window, max issue per 100 ms slice)
 *
 * Invariants (asserted by the Redis script, the fold and the tests):
 *  D1. A prize under stock control never issues more than its quota, and by any time t no
 *      more than the quota released by t (releasedQuota).
 *  D2. A prize issues at most maxPerSlice units in any one 100 ms slice.
 *  D3. A user wins at most winLimit times in a child activity.
 *  D4. A draw id is one draw: one outcome, one LotteryDrawn event, at most one unit of quota.
 *  D5. Child activities are isolated: their quotas, win counts and budgets are separate.
 */

export const SLICE_MS = 100;
export type Stage = 'internal_test' | 'gray' | 'formal';
export type AwardType = 'cash' | 'goods' | 'coupon';
export type Pacing = 'none' | 'even';

/** The configuration as upstream operators write it (JSON; times are ISO 8601). */
export interface PrizeConfig {
  prizeId: string;
  name: string;
  /** Relative chance; 0 switches the prize off. */
  weight: number;
  quota: number;
  /** Cash prizes: minor units. Goods prizes: the item and how many. Coupon prizes: the gift pack granted. */
  amount?: number;
  itemId?: string;
  packId?: string;
  quantity?: number;
  startsAt?: string;
  endsAt?: string;
  /** The most units issued in one 100 ms slice: the downstream's capacity, evenly spread. */
  maxPerSlice?: number;
  /** 'even' releases the quota evenly over the prize's window; what a slice does not issue rolls over. */
  pacing?: Pacing;
}

export interface PoolConfig {
  poolId: string;
  /** Weight of drawing nothing, beside the prizes' weights. */
  noWinWeight: number;
  prizes: PrizeConfig[];
}

export interface SceneConfig {
  sceneId: string;
  awardType: AwardType;
  statementText: string;
  /** Per user: at most `draws` draws in each `perMs` window. */
  rateLimit?: { draws: number; perMs: number };
  stockControl: boolean;
  reconcile: boolean;
  /** The participation window; defaults to the child's. */
  startsAt?: string;
  endsAt?: string;
  pool: PoolConfig;
}

export interface ChildConfig {
  childId: string;
  stage: Stage;
  startsAt: string;
  endsAt: string;
  /** Wins per user in this child activity. */
  winLimit?: number;
  /** Basis points of draws answered "no win" before any work (overload protection). */
  passThroughBp?: number;
  scenes: SceneConfig[];
}

export interface CampaignConfig {
  activityId: string;
  name: string;
  currency: Currency;
  children: ChildConfig[];
}

/** A problem with a configuration: where (a JSON Pointer into it) and what. */
export interface ConfigError {
  path: string;
  message: string;
}

/** The compiled form the draw path reads: times in epoch ms, defaults filled in. */
export interface Prize {
  prizeId: string;
  name: string;
  weight: number;
  quota: number;
  amount: number;
  itemId: string;
  quantity: number;
  startsAt: number;
  endsAt: number;
  maxPerSlice: number | null;
  pacing: Pacing;
}

export interface Scene {
  sceneId: string;
  awardType: AwardType;
  statementText: string;
  rateLimit: { draws: number; perMs: number } | null;
  stockControl: boolean;
  reconcile: boolean;
  startsAt: number;
  endsAt: number;
  poolId: string;
  noWinWeight: number;
  prizes: Prize[];
}

export interface Child {
  childId: string;
  stage: Stage;
  /** The ledger activity its cash is granted from: each child has its own budget. */
  ledgerActivityId: string;
  startsAt: number;
  endsAt: number;
  winLimit: number | null;
  passThroughBp: number;
  scenes: Map<string, Scene>;
}

export interface Campaign {
  activityId: string;
  version: number;
  name: string;
  currency: Currency;
  children: Child[];
}

// Windows are read by the same rule validation accepted them by (domain/instants.ts).
const ms = instantMs;

/**
 * What JSON Schema cannot say: ids unique at each level, windows that end after they start,
 * children that do not overlap (the child live at a time must be unique), scene and prize
 * windows inside their child's, and the fields each award type needs.
 */
export function configErrors(c: CampaignConfig): ConfigError[] {
  const errors: ConfigError[] = [];
  const window = (path: string, startsAt: string | undefined, endsAt: string | undefined) => {
    if (startsAt !== undefined && endsAt !== undefined && ms(startsAt) >= ms(endsAt)) {
      errors.push({ path: `${path}/endsAt`, message: `must be after startsAt (${startsAt})` });
    }
  };
  const unique = (path: string, field: string, ids: string[]) => {
    const seen = new Map<string, number>();
    ids.forEach((id, i) => {
      if (seen.has(id)) errors.push({ path: `${path}/${i}/${field}`, message: `"${id}" is already used by ${path}/${seen.get(id)}` });
      else seen.set(id, i);
    });
  };
  unique('/children', 'childId', c.children.map((ch) => ch.childId));
  c.children.forEach((ch, ci) => {
    const cp = `/children/${ci}`;
    window(cp, ch.startsAt, ch.endsAt);
    c.children.forEach((other, oi) => {
      if (oi < ci && ms(ch.startsAt) < ms(other.endsAt) && ms(other.startsAt) < ms(ch.endsAt)) {
        errors.push({ path: `${cp}/startsAt`, message: `the window overlaps child "${other.childId}" (${other.startsAt} to ${other.endsAt}); one child is live at a time` });
      }
    });
    const inside = (path: string, startsAt: string | undefined, endsAt: string | undefined) => {
      if (startsAt !== undefined && ms(startsAt) < ms(ch.startsAt)) errors.push({ path: `${path}/startsAt`, message: `must not be before the child's startsAt (${ch.startsAt})` });
      if (endsAt !== undefined && ms(endsAt) > ms(ch.endsAt)) errors.push({ path: `${path}/endsAt`, message: `must not be after the child's endsAt (${ch.endsAt})` });
      window(path, startsAt, endsAt);
    };
    unique(`${cp}/scenes`, 'sceneId', ch.scenes.map((s) => s.sceneId));
    ch.scenes.forEach((s, si) => {
      const sp = `${cp}/scenes/${si}`;
      inside(sp, s.startsAt, s.endsAt);
      unique(`${sp}/pool/prizes`, 'prizeId', s.pool.prizes.map((p) => p.prizeId));
      s.pool.prizes.forEach((p, pi) => {
        const pp = `${sp}/pool/prizes/${pi}`;
        inside(pp, p.startsAt, p.endsAt);
        // Each award type names what it gives, and nothing else.
        const gives = { cash: 'amount', goods: 'itemId', coupon: 'packId' } as const;
        const noun = { amount: 'an amount', itemId: 'an item', packId: 'a gift pack' } as const;
        const verb = { cash: 'pays', goods: 'grants', coupon: 'grants' } as const;
        const what = gives[s.awardType];
        const needs = { amount: 'an amount (fen)', itemId: 'an itemId', packId: 'a packId' } as const;
        if (p[what] === undefined) errors.push({ path: pp, message: `a prize in a ${s.awardType} scene needs ${needs[what]}` });
        for (const other of Object.values(gives)) {
          if (other !== what && p[other] !== undefined) errors.push({ path: `${pp}/${other}`, message: `a prize in a ${s.awardType} scene ${verb[s.awardType]} ${noun[what]}, not ${noun[other]}` });
        }
      });
    });
  });
  return errors;
}

export function ledgerActivityOf(activityId: string, childId: string): string {
  return `${activityId}:${childId}`;
}

/** Compiles a configuration that passed the JSON Schema and configErrors. */
export function compileCampaign(c: CampaignConfig, version: number): Campaign {
  const children = c.children.map((ch): Child => {
    const scenes = new Map<string, Scene>();
    for (const s of ch.scenes) {
      const startsAt = ms(s.startsAt ?? ch.startsAt);
      const endsAt = ms(s.endsAt ?? ch.endsAt);
      scenes.set(s.sceneId, {
        sceneId: s.sceneId, awardType: s.awardType, statementText: s.statementText, rateLimit: s.rateLimit ?? null,
        stockControl: s.stockControl, reconcile: s.reconcile, startsAt, endsAt, poolId: s.pool.poolId, noWinWeight: s.pool.noWinWeight,
        prizes: s.pool.prizes.map((p) => ({
          // A coupon prize's gift pack is its item: one pack per win.
          prizeId: p.prizeId, name: p.name, weight: p.weight, quota: p.quota, amount: p.amount ?? 0, itemId: p.itemId ?? p.packId ?? '',
          quantity: p.itemId !== undefined ? (p.quantity ?? 1) : p.packId !== undefined ? 1 : 0, startsAt: ms(p.startsAt ?? ch.startsAt), endsAt: ms(p.endsAt ?? ch.endsAt),
          maxPerSlice: p.maxPerSlice ?? null, pacing: p.pacing ?? 'none',
        })),
      });
    }
    return {
      childId: ch.childId, stage: ch.stage, ledgerActivityId: ledgerActivityOf(c.activityId, ch.childId), startsAt: ms(ch.startsAt), endsAt: ms(ch.endsAt),
      winLimit: ch.winLimit ?? null, passThroughBp: ch.passThroughBp ?? 0, scenes,
    };
  });
  return { activityId: c.activityId, version, name: c.name, currency: c.currency, children };
}

/** Upstream sends the parent id; the child live at the request's time answers it. */
export function liveChild(campaign: Campaign, at: number): Child | null {
  return campaign.children.find((ch) => ch.startsAt <= at && at < ch.endsAt) ?? null;
}

/**
 * D1: the quota released by time `at`. 'even' pacing releases it in equal parts per 100 ms
 * slice of the prize's window (rounded up, so the last slice releases the rest); what a
 * slice does not issue stays released, so it rolls over to the next.
 */
export function releasedQuota(prize: Pick<Prize, 'quota' | 'pacing' | 'startsAt' | 'endsAt'>, at: number): number {
  if (prize.pacing === 'none') return prize.quota;
  if (at < prize.startsAt) return 0;
  const slices = Math.max(1, Math.ceil((prize.endsAt - prize.startsAt) / SLICE_MS));
  const elapsed = Math.min(slices, Math.floor((at - prize.startsAt) / SLICE_MS) + 1);
  return Math.min(prize.quota, Math.ceil((prize.quota * elapsed) / slices));
}

export function sliceOf(at: number): number {
  return Math.floor(at / SLICE_MS);
}

/** A prize the draw may pick now, with how many units it may have issued in all by now (null: no stock control). */
export interface Candidate {
  prize: Prize;
  allowance: number | null;
}

/** The prizes in the pool now: switched on (weight above 0) and inside their window. */
export function candidatesAt(scene: Scene, at: number, exclude: ReadonlySet<string> = new Set()): Candidate[] {
  const out: Candidate[] = [];
  for (const prize of scene.prizes) {
    if (prize.weight <= 0 || at < prize.startsAt || at >= prize.endsAt || exclude.has(prize.prizeId)) continue;
    out.push({ prize, allowance: scene.stockControl ? releasedQuota(prize, at) : null });
  }
  return out;
}

/**
 * Overload protection: a share of draws is answered "no win" before any work. Decided by the
 * draw id, so a retry of a draw gets the same answer on every instance.
 */
export function passesThrough(passThroughBp: number, activityId: string, drawId: string): boolean {
  if (passThroughBp <= 0) return false;
  if (passThroughBp >= 10_000) return true;
  const h = createHash('sha256').update(activityId).update('\u0000').update(drawId).digest();
  return h.readUInt32BE(0) % 10_000 < passThroughBp;
}

export interface DrawCommand {
  activityId: string;
  sceneId: string;
  userId: string;
  drawId: string;
  /** The user's platform: a coupon prize's gift pack is granted for it. */
  platform?: 'ios' | 'android';
}

/** A retry of a draw must match it; another user or scene under a used draw id is a conflict. */
export function drawFingerprint(cmd: DrawCommand): string {
  const key = [cmd.activityId, cmd.sceneId, cmd.userId, cmd.drawId, ...(cmd.platform ? [cmd.platform] : [])];
  return createHash('sha256').update(JSON.stringify(key)).digest('base64url').slice(0, 22);
}

export function drawEventIdFor(activityId: string, drawId: string): string {
  return deterministicId('LotteryDrawn', activityId, drawId);
}

/** Order numbers a lottery draw grants under; reserved, so no direct grant can take one first. */
export const DRAW_ORDER_PREFIX = 'draw.';

/** The order number a draw's prize is granted under: one draw, one grant. */
export function drawOrderNo(drawId: string): string {
  return `${DRAW_ORDER_PREFIX}${drawId}`;
}

export function goodsGrantIdFor(ledgerActivityId: string, orderNo: string): string {
  return deterministicId('GoodsGranted', ledgerActivityId, orderNo);
}

export type NoWinReason = 'no_win_drawn' | 'pool_empty' | 'win_limit' | 'pass_through';

/** A won draw as the projection keeps it: quota consumption and win counts are sums of these. */
export interface DrawWinRecord {
  activityId: string;
  drawId: string;
  childId: string;
  sceneId: string;
  poolId: string;
  prizeId: string;
  userId: string;
  awardType: AwardType;
  amount: number;
  currency: Currency;
  itemId: string;
  quantity: number;
  fulfilmentId: string;
  drawnAt: number;
}

export interface GoodsGrantRecord {
  grantId: string;
  userId: string;
  activityId: string;
  sceneId: string;
  orderNo: string;
  itemId: string;
  quantity: number;
  grantedAt: number;
}
