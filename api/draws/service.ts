import { randomBytes, randomUUID } from 'node:crypto';
import {
  candidatesAt, compileCampaign, drawEventIdFor, drawFingerprint, drawOrderNo, goodsGrantIdFor, liveChild, passesThrough,
  type Campaign, type Child, type DrawCommand, type Prize, type Scene,
} from '../../domain/campaigns.ts';
import type { GoodsGranted, LotteryDrawn, TokenIssued } from '../../domain/events.ts';
import type { CampaignCatalog, CampaignStore } from '../../infra/campaign-store.ts';
import type { DrawQuotas, DrawRecord, Consumption } from '../../infra/draw-quotas.ts';
import type { Journal } from '../../infra/journal.ts';
import type { LedgerEvent } from '../../domain/events.ts';
import { journaled } from '../journaled.ts';
import type { GrantAudit, GrantService } from '../grants/service.ts';
import { ApiError } from '../errors.ts';
import type { CouponCommands } from '../../infra/coupon-store.ts';

export interface DrawAnswer {
  replayed: boolean;
  body: {
    drawId: string; activityId: string; childId: string; stage: string; sceneId: string; userId: string;
    outcome: 'won' | 'no_win'; reason?: string; configVersion: number; drawnAt: string;
    prize?: { prizeId: string; name: string; awardType: string; amount?: number; currency?: string; itemId?: string; quantity?: number; statementText: string };
    token?: { tokenId: string; token: string };
    goodsGrantId?: string;
    giftPackGrantId?: string;
  };
}

/** What the journal remembers of a draw: who it was for, and its answer. */
interface DrawRecordAnswer { fingerprint: string; body: DrawAnswer['body'] }

export const drawCommandKey = (drawEventId: string) => `draw:${drawEventId}`;

export interface DrawDeps {
  catalog: CampaignCatalog;
  store: CampaignStore;
  quotas: DrawQuotas;
  journal: Journal;
  grants: GrantService;
  /** Coupon prizes are gift packs granted through the coupon command side. */
  coupons: CouponCommands;
  /** Lets draws in flight when Redis lost its counters land in the log, then catches the projection up. */
  settle(): Promise<void>;
  consumption(activityId: string, childId: string): Promise<Consumption>;
  /** How long a draw waits for another instance's restore before answering 503. */
  restoreWaitMs: number;
  now?: () => number;
  /** Uniform in [0, 1). Cryptographic by default; tests pass a seeded one. */
  random?: () => number;
}

// Cryptographic randomness, read 48 bits at a time from a buffer refilled in bulk (one syscall per 680 numbers).
let pool = Buffer.alloc(0);
let at = 0;
function cryptoRandom(): number {
  if (at + 6 > pool.length) {
    pool = randomBytes(4080);
    at = 0;
  }
  const x = pool.readUIntBE(at, 6);
  at += 6;
  return x / 2 ** 48;
}

/**
 * A lottery draw (QQ "shake"): find the child activity live now, answer a share "no win" at
 * once under overload, then one Redis script decides the draw (rate limit, win limit, weighted
 * pick with quotas and slice caps). A cash win reserves its budget like any grant; if the
 * budget cannot pay it, the unit goes back and the draw picks again without that prize. The
 * draw is answered once its events are in Kafka: LotteryDrawn, and for a win the grant
 * (TokenIssued or GoodsGranted). A retry with the same drawId gets the same draw and
 * re-produces the same events, which the ledger applies once.
 */
export class DrawService {
  private readonly now: () => number;
  private readonly random: () => number;

  constructor(private readonly deps: DrawDeps) {
    this.now = deps.now ?? Date.now;
    this.random = deps.random ?? cryptoRandom;
  }

  async draw(cmd: DrawCommand, audit: GrantAudit): Promise<DrawAnswer> {
    const campaign = this.deps.catalog.get(cmd.activityId);
    if (!campaign) throw new ApiError(404, 'UNKNOWN_ACTIVITY', `There is no lottery campaign "${cmd.activityId}".`);
    const at = this.now();
    const child = liveChild(campaign, at);
    if (!child) {
      const next = campaign.children.filter((c) => c.startsAt > at).sort((a, b) => a.startsAt - b.startsAt)[0];
      throw new ApiError(409, 'ACTIVITY_NOT_LIVE', `No child activity of "${cmd.activityId}" is live at ${new Date(at).toISOString()}${next ? `; the next starts at ${new Date(next.startsAt).toISOString()}` : ''}.`);
    }
    const scene = child.scenes.get(cmd.sceneId);
    if (!scene) throw new ApiError(404, 'UNKNOWN_SCENE', `Child activity "${child.childId}" of "${cmd.activityId}" has no scene "${cmd.sceneId}".`);
    if (at < scene.startsAt || at >= scene.endsAt) {
      throw new ApiError(409, 'OUTSIDE_PARTICIPATION_WINDOW', `Scene "${scene.sceneId}" takes draws from ${new Date(scene.startsAt).toISOString()} to ${new Date(scene.endsAt).toISOString()}.`);
    }
    if (scene.awardType === 'coupon' && !cmd.platform) {
      throw new ApiError(422, 'PLATFORM_REQUIRED', `Scene "${scene.sceneId}" gives coupon gift packs, which are granted for a platform: send "platform" ("ios" or "android").`);
    }
    if (passesThrough(child.passThroughBp, cmd.activityId, cmd.drawId)) {
      return {
        replayed: false,
        body: {
          drawId: cmd.drawId, activityId: cmd.activityId, childId: child.childId, stage: child.stage, sceneId: scene.sceneId, userId: cmd.userId,
          outcome: 'no_win', reason: 'pass_through', configVersion: campaign.version, drawnAt: new Date(at).toISOString(),
        },
      };
    }

    const fingerprint = drawFingerprint(cmd);
    const excluded = new Set<string>();
    let rateLimit = scene.rateLimit;
    for (;;) {
      const candidates = candidatesAt(scene, at, excluded);
      const take = await this.deps.quotas.draw(cmd.activityId, child.childId, {
        drawId: cmd.drawId, userId: cmd.userId, sceneId: scene.sceneId, fingerprint, at, configVersion: campaign.version, rateLimit,
        winLimit: child.winLimit, noWinWeight: scene.noWinWeight, candidates, randoms: candidates.map(() => this.random()).concat(this.random()),
      });
      if (take.status === 'unloaded') {
        await this.restore(cmd.activityId, child.childId);
        continue;
      }
      if (take.status === 'rate_limited') {
        throw new ApiError(429, 'RATE_LIMITED', `User ${cmd.userId} may draw ${scene.rateLimit!.draws} time(s) every ${scene.rateLimit!.perMs} ms in scene "${scene.sceneId}"; try again in ${take.retryAfterMs} ms.`, { retryAfterMs: take.retryAfterMs });
      }
      if (take.record.fingerprint !== fingerprint) {
        throw new ApiError(409, 'DRAW_CONFLICT', `Draw ${cmd.drawId} was already made for another user or scene; a draw id identifies one draw.`);
      }
      const replayed = take.status === 'existing';
      // A retry follows the version its draw was made under, which may since have changed.
      const made = replayed ? await this.versionOf(campaign, take.record.configVersion, child.childId) : { campaign, child };
      const madeScene = made.child.scenes.get(scene.sceneId) ?? scene;
      const prize = take.record.outcome === 'won' ? madeScene.prizes.find((p) => p.prizeId === take.record.prizeId) : undefined;
      if (take.record.outcome === 'won' && !prize) throw new Error(`draw ${cmd.drawId} won prize ${take.record.prizeId}, which version ${made.campaign.version} does not have`);
      const answer = await this.fulfil(cmd, made.campaign, made.child, madeScene, take.record, prize, audit, replayed);
      if (answer) return answer;
      // The cash prize found no budget: its unit went back; pick again without it (and without counting the draw twice).
      excluded.add(take.record.prizeId);
      rateLimit = null;
    }
  }

  /** Produces the draw's events; null when a cash prize could not be paid and was given back. */
  private async fulfil(
    cmd: DrawCommand, campaign: Campaign, child: Child, scene: Scene, record: DrawRecord, prize: Prize | undefined, audit: GrantAudit, replayed: boolean,
  ): Promise<DrawAnswer | null> {
    const traceId = audit.traceId ?? randomUUID();
    const orderNo = drawOrderNo(cmd.drawId);
    let grant: { type: 'TokenIssued'; event: TokenIssued; token: string } | { type: 'GoodsGranted'; event: GoodsGranted } | { type: 'GiftPackGranted'; event: { eventId: string; grantId: string } } | null = null;
    const commandKey = drawCommandKey(drawEventIdFor(cmd.activityId, cmd.drawId));
    if (!replayed && prize && scene.awardType === 'coupon') {
      // Redis did not know this draw; the journal may (Redis lost it). Its first answer stands,
      // and is checked before a gift pack is granted for what may be another prize.
      const first = await this.deps.journal.answerOf<DrawRecordAnswer>(commandKey);
      if (first) return this.firstAnswer(cmd, record, prize, first);
    }
    if (prize && scene.awardType === 'cash') {
      const t = this.deps.grants.tokenOf(
        { activityId: child.ledgerActivityId, sceneId: scene.sceneId, orderNo, userId: cmd.userId, amount: prize.amount, currency: campaign.currency },
        campaign.currency, record.at, { ...audit, traceId },
      );
      grant = { type: 'TokenIssued', event: t.event, token: t.token };
    } else if (prize && scene.awardType === 'coupon') {
      // The pack is granted (stock taken, GiftPackGranted produced) before the draw is recorded; a retry replays it by its order number.
      const r = await this.deps.coupons.grant(
        { activityId: child.ledgerActivityId, orderNo, userId: cmd.userId, packId: prize.itemId, platform: cmd.platform ?? 'android' }, { ...audit, traceId },
      );
      if (!r.ok && r.refusal.code === 'OUT_OF_STOCK') {
        if (!(await this.deps.quotas.release(cmd.activityId, child.childId, cmd.drawId, cmd.userId, prize.prizeId, record.at))) {
          throw new ApiError(503, 'LEDGER_UNAVAILABLE', 'The draw could not be completed right now; retry with the same drawId.');
        }
        return null;
      }
      if (!r.ok) throw new Error(`draw ${cmd.drawId} could not grant gift pack ${prize.itemId}: ${r.refusal.code} ${r.refusal.message}`);
      grant = { type: 'GiftPackGranted', event: { eventId: r.record.grantId, grantId: r.record.grantId } };
    } else if (prize) {
      const grantId = goodsGrantIdFor(child.ledgerActivityId, orderNo);
      grant = {
        type: 'GoodsGranted',
        event: {
          eventId: grantId, occurredAt: record.at, activityId: child.ledgerActivityId, traceId, grantId, orderNo, userId: cmd.userId, sceneId: scene.sceneId,
          itemId: prize.itemId, quantity: prize.quantity, grantedBy: audit.grantedBy, clientAddress: audit.clientAddress, requestId: audit.requestId,
        },
      };
    }
    const drawn: LotteryDrawn = {
      eventId: drawEventIdFor(cmd.activityId, cmd.drawId), occurredAt: record.at, activityId: cmd.activityId, traceId, drawId: cmd.drawId, userId: cmd.userId,
      childId: child.childId, sceneId: scene.sceneId, poolId: scene.poolId, configVersion: record.configVersion, outcome: record.outcome, reason: record.reason,
      prizeId: prize?.prizeId ?? '', awardType: prize ? scene.awardType : '', prizeAmount: prize && scene.awardType === 'cash' ? prize.amount : 0,
      currency: campaign.currency, itemId: prize?.itemId ?? '', quantity: prize?.quantity ?? 0, fulfilmentId: grant?.event.eventId ?? '',
      requestedBy: audit.grantedBy, clientAddress: audit.clientAddress, requestId: audit.requestId,
    };
    const body: DrawAnswer['body'] = {
      drawId: cmd.drawId, activityId: cmd.activityId, childId: child.childId, stage: child.stage, sceneId: scene.sceneId, userId: cmd.userId,
      outcome: record.outcome, ...(record.reason === '' ? {} : { reason: record.reason }), configVersion: record.configVersion, drawnAt: new Date(record.at).toISOString(),
      ...(prize ? {
        prize: {
          prizeId: prize.prizeId, name: prize.name, awardType: scene.awardType, statementText: scene.statementText,
          ...(scene.awardType === 'cash' ? { amount: prize.amount, currency: campaign.currency } : { itemId: prize.itemId, quantity: prize.quantity }),
        },
      } : {}),
      ...(grant?.type === 'TokenIssued' ? { token: { tokenId: grant.event.tokenId, token: grant.token } } : {}),
      ...(grant?.type === 'GoodsGranted' ? { goodsGrantId: grant.event.grantId } : {}),
      ...(grant?.type === 'GiftPackGranted' ? { giftPackGrantId: grant.event.grantId } : {}),
    };
    // The draw, its outcome and its award commit together in the journal: a draw id is one
    // outcome for as long as the journal remembers it, whatever Redis remembers.
    const events: LedgerEvent[] = [
      ...(grant?.type === 'TokenIssued' ? [{ type: 'TokenIssued' as const, data: grant.event }] : []),
      ...(grant?.type === 'GoodsGranted' ? [{ type: 'GoodsGranted' as const, data: grant.event }] : []),
      { type: 'LotteryDrawn', data: drawn },
    ];
    const r = await journaled(() => this.deps.journal.accept<DrawRecordAnswer>({
      key: commandKey, events, answer: { fingerprint: record.fingerprint, body },
      ...(grant?.type === 'TokenIssued' ? { reserve: { activityId: child.ledgerActivityId, amount: grant.event.amount } } : {}),
    }), 'The draw could not be recorded right now; retry with the same drawId.');
    if (r.outcome === 'exhausted') {
      // The cash prize found no budget: its unit goes back and the draw picks again without it.
      if (!(await this.deps.quotas.release(cmd.activityId, child.childId, cmd.drawId, cmd.userId, prize!.prizeId, record.at))) {
        // The draw is no longer that win (its record expired or changed meanwhile): drawing again could loop.
        throw new ApiError(503, 'LEDGER_UNAVAILABLE', 'The draw could not be completed right now; retry with the same drawId.');
      }
      return null;
    }
    if (r.outcome === 'existing') return this.firstAnswer(cmd, replayed ? null : record, prize, r.answer);
    return { replayed, body };
  }

  /**
   * The journal's first answer to a draw id. When this attempt drew afresh because Redis had
   * lost the draw, the unit it took goes back: the draw was already made, once.
   */
  private async firstAnswer(cmd: DrawCommand, fresh: DrawRecord | null, prize: Prize | undefined, first: DrawRecordAnswer): Promise<DrawAnswer> {
    if (first.fingerprint !== drawFingerprint(cmd)) {
      throw new ApiError(409, 'DRAW_CONFLICT', `Draw ${cmd.drawId} was already made for another user or scene; a draw id identifies one draw.`);
    }
    // The same decision (a concurrent retry's journal entry won the race) keeps its unit; a
    // decision made afresh because Redis had lost the draw gives its unit back.
    if (fresh && prize && fresh.outcome === 'won' && first.body.drawnAt !== new Date(fresh.at).toISOString()) {
      await this.deps.quotas.release(cmd.activityId, first.body.childId, cmd.drawId, cmd.userId, prize.prizeId, fresh.at);
    }
    return { replayed: true, body: first.body };
  }

  private async versionOf(current: Campaign, version: number, childId: string): Promise<{ campaign: Campaign; child: Child }> {
    let campaign = current;
    if (version !== current.version) {
      const stored = await this.deps.store.get(current.activityId, version);
      if (stored) campaign = compileCampaign(stored.config, stored.version);
    }
    const child = campaign.children.find((c) => c.childId === childId) ?? current.children.find((c) => c.childId === childId);
    if (!child) throw new Error(`child ${childId} is in neither version ${version} nor ${current.version} of ${current.activityId}`);
    return { campaign, child };
  }

  /** Rebuilds the child's counters, or waits while another instance does. */
  private async restore(activityId: string, childId: string): Promise<void> {
    const deadline = Date.now() + this.deps.restoreWaitMs;
    const busy = () => new ApiError(503, 'DRAWS_RESTORING', `The prize counters of "${activityId}" are being rebuilt; retry with the same drawId in a second.`, { retryAfterMs: 1_000 });
    for (;;) {
      let done: boolean;
      try {
        done = await this.deps.quotas.restore(activityId, childId, this.deps.settle, () => this.deps.consumption(activityId, childId), this.deps.restoreWaitMs);
      } catch {
        // The projection could not be caught up or read (the projector is down or behind): no draw may go on without the counters.
        throw busy();
      }
      if (done || (await this.deps.quotas.isLoaded(activityId, childId))) return;
      if (Date.now() > deadline) throw busy();
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}
