import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { creditFor } from '../../domain/grants.ts';
import { shareCreditFor } from '../../domain/packets.ts';
import type { WithdrawalRequested } from '../../domain/events.ts';
import type { Currency } from '../../domain/money.ts';
import { checkWithdrawal, inRollout, withdrawalIdFor } from '../../domain/withdrawals.ts';
import type { EventPublisher } from '../../infra/publisher.ts';
import type { Journal } from '../../infra/journal.ts';
import { isKafkaError } from '../../infra/kafka-common.ts';
import { beforeDeadline, ProjectionBehind, type ProjectionFence } from '../../infra/projection-fence.ts';
import type { WalletSettingsStore } from '../../infra/wallet-settings.ts';
import { ApiError } from '../errors.ts';
import type { WalletReader, WithdrawalView } from './reader.ts';
import { WalletDebits } from './debits.ts';

export interface WithdrawalAudit {
  requestedBy: string;
  clientAddress: string;
  requestId: string;
}

const CURRENCY: Currency = 'CNY';

interface RequestRow { withdrawal_id: string; user_id: string; amount: number; currency: Currency; created_ms: number }

/**
 * Withdraw: force-credit the user's pending tokens ahead of the crediting backlog, then,
 * under a per-user lock, check the spendable balance and record the request together with
 * its WithdrawalRequested event (available → withdrawing; also the payout request) in the
 * command journal, whose relay produces it. An accepted withdrawal therefore reaches the
 * ledger whether or not Kafka is up when it is accepted, and never holds money stranded.
 *
 * The spendable balance and the lock are shared with every other debit (see debits.ts), so a
 * withdrawal and a red packet cannot both spend one balance either.
 */
export class WithdrawalService {
  private readonly debits: WalletDebits;

  constructor(private readonly deps: {
    pool: pg.Pool; publisher: EventPublisher; journal: Journal; settings: WalletSettingsStore; fence: ProjectionFence; reader: WalletReader;
    /** How long a withdrawal may wait for the user's rewards to be projected. */
    catchUpMs?: number;
    /** False while this instance has not reached Kafka since it started: the fence cannot work, and is not tried. */
    kafkaConnected?: () => boolean;
  }) {
    this.debits = new WalletDebits(deps.pool);
  }

  async withdraw(userId: string, idempotencyKey: string, amount: number, currency: string, audit: WithdrawalAudit): Promise<{ replayed: boolean; body: WithdrawalView }> {
    const settings = await this.deps.settings.get();
    if (!inRollout(userId, settings.withdrawalRolloutBp)) {
      throw new ApiError(403, 'WITHDRAWAL_NOT_OPEN', 'Withdrawal is not open for your account yet; it is being rolled out gradually.');
    }
    const terms = { currency: CURRENCY, maxSingleWithdrawal: settings.maxSingleWithdrawal };
    const early = checkWithdrawal(amount, currency, Number.MAX_SAFE_INTEGER, terms);
    if (early) throw new ApiError(422, early.code, early.message);

    const withdrawalId = withdrawalIdFor(userId, idempotencyKey);
    const existing = await this.request(withdrawalId);
    if (existing) return { replayed: true, body: await this.replay(existing, amount, currency) };

    const deadline = Date.now() + (this.deps.catchUpMs ?? 5_000);
    // Whether the projection is known to hold every reward of the user (read your writes).
    // Without it (Kafka unreachable, the journal or the projection behind), the decision below
    // is taken against what is projected: every event not projected yet can only add to the
    // user's available balance (debits not projected are holds), so an acceptance is safe,
    // and a refusal is not final: it is a 503, not INSUFFICIENT_FUNDS.
    let fenced = false;
    if (this.deps.kafkaConnected?.() !== false) {
      try {
        // The user's rewards must be in the log before the projection can show them: the journal
        // first produces what it accepted so far, then the projection catches up with the log.
        const upTo = await this.deps.journal.position();
        while (!(await this.deps.journal.producedUpTo(upTo))) {
          if (Date.now() > deadline) throw new ProjectionBehind('the command journal has not produced the user\'s latest rewards yet');
          await new Promise((r) => setTimeout(r, 10));
        }
        await this.deps.fence.catchUp(userId, deadline);
        // Refuse before crediting anything when even the pending rewards could not cover it.
        const atMost = await this.debits.spendable(userId, true);
        const hopeless = checkWithdrawal(amount, currency, atMost, terms);
        if (hopeless) throw new ApiError(409, hopeless.code, hopeless.message, { available: Math.max(0, atMost) });
        await this.forceCredit(userId, deadline);
        fenced = true;
      } catch (err) {
        // A first attempt with this key may have been accepted meanwhile (its client gave up
        // waiting, and this is the retry): its hold is what refused this one, and its answer stands.
        const first = await this.request(withdrawalId);
        if (first) return { replayed: true, body: await this.replay(first, amount, currency) };
        if (!(err instanceof ProjectionBehind || isKafkaError(err))) throw err;
      }
    }

    const decided = await this.debits.decide(userId, {
      existing: (client) => this.request(withdrawalId, client),
      record: async (client, spendable) => {
        const refused = checkWithdrawal(amount, currency, spendable, terms);
        if (refused && !fenced) {
          throw new ApiError(503, 'WALLET_BUSY', 'Your latest rewards are still being recorded; try again in a moment with the same Idempotency-Key.', { retryAfterMs: 2_000 });
        }
        if (refused) throw new ApiError(409, refused.code, refused.message, { available: Math.max(0, spendable) });
        const inserted = await client.query<RequestRow>(
          `insert into withdrawal_requests(withdrawal_id, user_id, idempotency_key, amount, currency)
           values ($1, $2, $3, $4, $5)
           returning withdrawal_id, user_id, amount, currency, (extract(epoch from created_at) * 1000)::bigint as created_ms`,
          [withdrawalId, userId, idempotencyKey, amount, currency],
        );
        const row = inserted.rows[0]!;
        await this.deps.journal.acceptIn(client, { key: `withdrawal:${withdrawalId}`, events: [{ type: 'WithdrawalRequested', data: this.eventOf(row, audit) }], answer: { withdrawalId } });
        return row;
      },
    });
    if (decided.raced) return { replayed: true, body: await this.replay(decided.row, amount, currency) };
    const row = decided.row;
    this.deps.journal.committed();
    this.deps.reader.forgetBalance(userId);
    return { replayed: false, body: this.pendingView(row) };
  }

  /** A retry with the same key: the same request gets the same answer (the journal produces its event). */
  private async replay(existing: RequestRow, amount: number, currency: string): Promise<WithdrawalView> {
    if (existing.amount !== amount || existing.currency !== currency) {
      throw new ApiError(409, 'IDEMPOTENCY_CONFLICT', 'This Idempotency-Key was already used for a different withdrawal.');
    }
    return (await this.deps.reader.withdrawal(existing.user_id, existing.withdrawal_id)) ?? this.pendingView(existing);
  }

  private eventOf(row: RequestRow, audit: WithdrawalAudit): WithdrawalRequested {
    // occurredAt comes from the stored request: the event is fixed when the request is.
    return {
      eventId: row.withdrawal_id, occurredAt: row.created_ms, activityId: '', traceId: audit.requestId,
      withdrawalId: row.withdrawal_id, userId: row.user_id, amount: row.amount, currency: row.currency,
      requestedBy: audit.requestedBy, clientAddress: audit.clientAddress, requestId: audit.requestId,
    };
  }

  /**
   * Credits the user's pending tokens, and red-packet shares already projected as claimed,
   * now instead of behind the crediting backlog. The caller has waited until everything on
   * the user's partition is projected, so no granted token is missed (a share claimed a
   * moment ago on the sender's partition may be, and is credited as usual). The credits have
   * the same event ids as the crediting processor's later copies, which therefore change
   * nothing; then waits until the credits are projected.
   */
  private async forceCredit(userId: string, deadline: number): Promise<void> {
    const [{ rows: tokens }, { rows: shares }] = await Promise.all([
      this.deps.pool.query<{ token_id: string; activity_id: string; amount: number; currency: Currency }>(
        `select token_id, activity_id, amount, currency from tokens where user_id = $1 and status = 'pending'`, [userId],
      ),
      // Grabbed red-packet shares the ledger accepted and has not credited yet.
      this.deps.pool.query<{ packet_id: string; amount: number; currency: Currency }>(
        `select c.packet_id, c.amount, c.currency from packet_claims c
          where c.user_id = $1 and not exists (select 1 from packet_credits k where k.packet_id = c.packet_id and k.user_id = c.user_id)`, [userId],
      ),
    ]);
    if (tokens.length === 0 && shares.length === 0) return;
    const now = Date.now();
    await beforeDeadline(Promise.all([
      this.deps.publisher.publishMany('TokenCredited', tokens.map((r) => creditFor({
        tokenId: r.token_id, activityId: r.activity_id, traceId: randomUUID(), userId, amount: r.amount, currency: r.currency,
      }, now))),
      this.deps.publisher.publishMany('PacketShareCredited', shares.map((r) => shareCreditFor({
        packetId: r.packet_id, userId, amount: r.amount, currency: r.currency, traceId: randomUUID(),
      }, now))),
    ]), deadline, 'Kafka (the forced credits)');
    await this.deps.fence.catchUp(userId, deadline);
  }

  private async request(withdrawalId: string, client: pg.Pool | pg.PoolClient = this.deps.pool): Promise<RequestRow | null> {
    const { rows } = await client.query<RequestRow>(
      `select withdrawal_id, user_id, amount, currency, (extract(epoch from created_at) * 1000)::bigint as created_ms
         from withdrawal_requests where withdrawal_id = $1`,
      [withdrawalId],
    );
    return rows[0] ?? null;
  }

  private pendingView(row: RequestRow): WithdrawalView {
    return {
      withdrawalId: row.withdrawal_id, userId: row.user_id, amount: row.amount, currency: row.currency, status: 'withdrawing',
      requestedAt: new Date(row.created_ms).toISOString(), resolvedAt: null, reason: null,
    };
  }
}
