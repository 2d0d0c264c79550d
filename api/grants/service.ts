import { randomUUID } from 'node:crypto';
import { checkGrant, grantFingerprint, tokenIdFor, type GrantCommand } from '../../domain/grants.ts';
import type { TokenIssued } from '../../domain/events.ts';
import type { Currency } from '../../domain/money.ts';
import type { TokenSigner } from '../../domain/tokens.ts';
import type { ActivityCatalog } from '../../infra/activities.ts';
import type { BudgetStore } from '../../infra/budget.ts';
import type { EventPublisher } from '../../infra/publisher.ts';
import { ApiError } from '../errors.ts';

export interface GrantAudit {
  grantedBy: string;
  clientAddress: string;
  requestId: string;
  traceId?: string;
}

export interface GrantAnswer {
  replayed: boolean;
  body: {
    tokenId: string; token: string; status: 'pending'; userId: string; activityId: string; orderNo: string;
    amount: number; currency: string; issuedAt: string;
  };
}

/**
 * Accepts a cash grant: validate, reserve budget and the order number atomically, sign the
 * token, and produce TokenIssued. A retry of an order (same fingerprint) gets the same
 * token (Ed25519 is deterministic over the same claims) and re-produces the same event,
 * which the ledger applies once; so a crash anywhere in between is healed by the retry.
 */
export class GrantService {
  constructor(private readonly deps: {
    activities: ActivityCatalog; budget: BudgetStore; signer: TokenSigner; publisher: EventPublisher; now?: () => number;
  }) {}

  async grant(cmd: GrantCommand, audit: GrantAudit): Promise<GrantAnswer> {
    const terms = await this.deps.activities.get(cmd.activityId);
    if (!terms) throw new ApiError(404, 'UNKNOWN_ACTIVITY', `There is no activity "${cmd.activityId}".`);
    const rejection = checkGrant(cmd, terms);
    if (rejection) throw new ApiError(422, rejection.code, rejection.message);

    const fingerprint = grantFingerprint(cmd);
    const now = (this.deps.now ?? Date.now)();
    const r = await this.deps.budget.reserve(cmd.activityId, cmd.orderNo, cmd.amount, fingerprint, now);
    if (r.outcome === 'exhausted') {
      throw new ApiError(409, 'BUDGET_EXHAUSTED', `Activity ${cmd.activityId} has ${r.remaining} fen of budget left, less than the ${cmd.amount} requested.`, { remaining: r.remaining });
    }
    if (r.fingerprint !== fingerprint) {
      throw new ApiError(409, 'ORDER_CONFLICT', `Order ${cmd.orderNo} was already used for a different grant; an order number identifies one grant.`);
    }

    const { tokenId, token, event } = this.tokenOf(cmd, terms.currency, r.issuedAt, audit);
    try {
      await this.deps.publisher.publish('TokenIssued', event);
    } catch {
      // The reservation stays: a retry with the same order number finds it and publishes.
      throw new ApiError(503, 'LEDGER_UNAVAILABLE', 'The grant could not be recorded right now; retry with the same orderNo.');
    }
    return {
      replayed: r.outcome === 'existing',
      body: {
        tokenId, token, status: 'pending', userId: cmd.userId, activityId: cmd.activityId, orderNo: cmd.orderNo,
        amount: cmd.amount, currency: terms.currency, issuedAt: new Date(r.issuedAt).toISOString(),
      },
    };
  }

  /**
   * The signed token and TokenIssued event of a reserved grant. Deterministic in its inputs,
   * so whoever (a retry, a lottery draw's retry) rebuilds it gets the same token and event.
   */
  tokenOf(cmd: GrantCommand, currency: Currency, issuedAt: number, audit: GrantAudit): { tokenId: string; token: string; event: TokenIssued } {
    const tokenId = tokenIdFor(cmd.activityId, cmd.orderNo);
    const { token, signature } = this.deps.signer.sign({
      tokenId, userId: cmd.userId, amount: cmd.amount, currency, activityId: cmd.activityId,
      sceneId: cmd.sceneId, orderNo: cmd.orderNo, issuedAt,
    });
    const event: TokenIssued = {
      eventId: tokenId, occurredAt: issuedAt, activityId: cmd.activityId, traceId: audit.traceId ?? randomUUID(),
      tokenId, orderNo: cmd.orderNo, userId: cmd.userId, sceneId: cmd.sceneId, amount: cmd.amount, currency,
      signature, keyId: this.deps.signer.keyId,
      grantedBy: audit.grantedBy, clientAddress: audit.clientAddress, requestId: audit.requestId,
    };
    return { tokenId, token, event };
  }
}
