import { randomUUID } from 'node:crypto';
import { checkGrant, grantFingerprint, tokenIdFor, type GrantCommand } from '../../domain/grants.ts';
import type { TokenIssued } from '../../domain/events.ts';
import type { Currency } from '../../domain/money.ts';
import type { TokenSigner } from '../../domain/tokens.ts';
import type { ActivityCatalog } from '../../infra/activities.ts';
import type { Journal } from '../../infra/journal.ts';
import { journaled } from '../journaled.ts';
import { ApiError } from '../errors.ts';

/** What the journal remembers of a grant: enough to rebuild its first answer. */
interface GrantRecord { fingerprint: string; issuedAt: number }

export const grantCommandKey = (tokenId: string) => `grant:${tokenId}`;

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
 * Accepts a cash grant: validate, sign the token, and journal the grant (infra/journal.ts):
 * its budget, its order number and its TokenIssued event commit together in Postgres before
 * the answer, and the relay produces the event. A retry of an order gets the first answer
 * (the same token: Ed25519 is deterministic over the same claims) for as long as the journal
 * remembers the order, whatever Redis or Kafka are doing.
 */
export class GrantService {
  constructor(private readonly deps: {
    activities: ActivityCatalog; journal: Journal; signer: TokenSigner; now?: () => number;
  }) {}

  async grant(cmd: GrantCommand, audit: GrantAudit): Promise<GrantAnswer> {
    const terms = await this.deps.activities.get(cmd.activityId);
    if (!terms) throw new ApiError(404, 'UNKNOWN_ACTIVITY', `There is no activity "${cmd.activityId}".`);
    const rejection = checkGrant(cmd, terms);
    if (rejection) throw new ApiError(422, rejection.code, rejection.message);

    const fingerprint = grantFingerprint(cmd);
    const issuedAt = (this.deps.now ?? Date.now)();
    const made = this.tokenOf(cmd, terms.currency, issuedAt, audit);
    const r = await journaled(() => this.deps.journal.accept<GrantRecord>({
      key: grantCommandKey(made.tokenId), events: [{ type: 'TokenIssued', data: made.event }], answer: { fingerprint, issuedAt },
      reserve: { activityId: cmd.activityId, amount: cmd.amount },
    }), 'The grant could not be recorded right now; retry with the same orderNo.');
    if (r.outcome === 'exhausted') {
      throw new ApiError(409, 'BUDGET_EXHAUSTED', `Activity ${cmd.activityId} has ${r.remaining} fen of budget left, less than the ${cmd.amount} requested.`, { remaining: r.remaining });
    }
    if (r.outcome === 'existing' && r.answer.fingerprint !== fingerprint) {
      throw new ApiError(409, 'ORDER_CONFLICT', `Order ${cmd.orderNo} was already used for a different grant; an order number identifies one grant.`);
    }
    const first = r.outcome === 'existing' ? r.answer.issuedAt : issuedAt;
    const { tokenId, token } = first === issuedAt ? made : this.tokenOf(cmd, terms.currency, first, audit);
    return {
      replayed: r.outcome === 'existing',
      body: {
        tokenId, token, status: 'pending', userId: cmd.userId, activityId: cmd.activityId, orderNo: cmd.orderNo,
        amount: cmd.amount, currency: terms.currency, issuedAt: new Date(first).toISOString(),
      },
    };
  }

  /**
   * The signed token and TokenIssued event of a reserved grant. Deterministic in its inputs,
   * so whoever (a retry, a lottery draw's retry) rebuilds it gets the same token and event
   * (the budget slice, which the journal adds, is not part of the signed claims).
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
      // The journal fills in the slice it reserves as it accepts the grant (infra/journal.ts).
      budgetSliceEnd: null, budgetFunded: null,
    };
    return { tokenId, token, event };
  }
}
