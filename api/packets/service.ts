import type pg from 'pg';
import { checkPacket, packetIdFor, splitShares, type PacketTerms } from '../../domain/packets.ts';
import { coversDebit } from '../../domain/money.ts';
import { PACKET_REQUEST_COLUMNS, packetCreatedFrom, type PacketRequestRow } from '../../infra/packet-requests.ts';
import type { Journal } from '../../infra/journal.ts';
import { PacketClaims } from '../../infra/packet-claims.ts';
import { journaled } from '../journaled.ts';
import type { PacketGrabs } from '../../infra/packet-grabs.ts';
import { ProjectionBehind } from '../../infra/projection-fence.ts';
import { isKafkaError } from '../../infra/kafka-common.ts';
import type { Logger } from '../../infra/log.ts';
import type { PacketRestorer } from '../../projections/packet-reader.ts';
import { WalletDebits } from '../wallets/debits.ts';
import { ApiError } from '../errors.ts';

export interface PacketAudit {
  requestedBy: string;
  clientAddress: string;
  requestId: string;
}

export interface CreatePacket {
  amount: number;
  currency: string;
  count: number;
  expirySeconds?: number;
  greeting?: string;
}

export interface CreatedPacket {
  packetId: string;
  senderId: string;
  amount: number;
  currency: string;
  count: number;
  greeting: string;
  createdAt: string;
  expiresAt: string;
}

export interface GrabbedView {
  packetId: string;
  userId: string;
  seq: number;
  amount: number;
  currency: string;
  claimedAt: string;
}

export const DEFAULT_GREETING = '恭喜发财，大吉大利';

type RequestRow = PacketRequestRow;
const REQUEST_COLUMNS = PACKET_REQUEST_COLUMNS;

/**
 * Sending and grabbing group red packets.
 *
 * Sending is a debit like a withdrawal (same lock, same holds, see wallets/debits.ts): the
 * split is drawn once, stored with the request and journaled in PacketCreated in the same
 * transaction; a retry with the same Idempotency-Key answers that same packet. Then the
 * packet goes live in Redis.
 *
 * Grabbing is one Redis script (infra/packet-grabs.ts), then the claim journaled at once
 * (infra/packet-claims.ts); the credit to the grabber's available balance follows
 * asynchronously (streams/crediting.ts).
 * Turned-away grabs (grabbed before, no share left, expired) never touch the ledger.
 */
export class PacketService {
  private readonly debits: WalletDebits;
  private readonly claims: PacketClaims;

  constructor(private readonly deps: {
    pool: pg.Pool; journal: Journal; grabs: PacketGrabs; restorer: PacketRestorer; terms: PacketTerms; log: Logger;
    /** How long a grab may wait for the ledger to restore a packet Redis lost. */
    restoreMs?: number;
  }) {
    this.debits = new WalletDebits(deps.pool);
    this.claims = new PacketClaims(deps.journal, deps.grabs);
  }

  async create(senderId: string, idempotencyKey: string, cmd: CreatePacket, audit: PacketAudit): Promise<{ replayed: boolean; body: CreatedPacket }> {
    const { terms } = this.deps;
    const expiryMs = (cmd.expirySeconds ?? terms.maxExpiryMs / 1000) * 1000;
    const greeting = cmd.greeting ?? DEFAULT_GREETING;
    const refused = checkPacket({ amount: cmd.amount, currency: cmd.currency, count: cmd.count, expiryMs }, terms);
    if (refused) throw new ApiError(422, refused.code, refused.message);

    const packetId = packetIdFor(senderId, idempotencyKey);
    const existing = await this.request(packetId);
    if (existing) return { replayed: true, body: await this.replay(existing, { ...cmd, greeting, expiryMs }) };

    const decided = await this.debits.decide(senderId, {
      existing: (client) => this.request(packetId, client),
      record: async (client, spendable) => {
        if (!coversDebit(spendable, cmd.amount)) {
          const available = Math.max(0, spendable);
          throw new ApiError(409, 'INSUFFICIENT_FUNDS', `the available balance is ${available} fen, less than the ${cmd.amount} this packet holds`, { available });
        }
        const inserted = await client.query<RequestRow>(
          `insert into packet_requests(packet_id, sender_id, idempotency_key, amount, currency, share_count, shares, greeting, expires_at,
                                       requested_by, client_address, request_id)
           values ($1, $2, $3, $4, $5, $6, $7, $8, now() + make_interval(secs => $9::double precision / 1000), $10, $11, $12)
           returning ${REQUEST_COLUMNS}`,
          [packetId, senderId, idempotencyKey, cmd.amount, cmd.currency, cmd.count, splitShares(cmd.amount, cmd.count), greeting, expiryMs,
            audit.requestedBy, audit.clientAddress, audit.requestId],
        );
        const row = inserted.rows[0]!;
        await this.deps.journal.acceptIn(client, { key: `packet:${packetId}`, events: [{ type: 'PacketCreated', data: packetCreatedFrom(row) }], answer: { packetId } });
        return row;
      },
    });
    if (decided.raced) return { replayed: true, body: await this.replay(decided.row, { ...cmd, greeting, expiryMs }) };
    const row = decided.row;
    this.deps.journal.committed();
    await this.goLive(row);
    return { replayed: false, body: this.view(row) };
  }

  async grab(packetId: string, userId: string, traceId: string): Promise<{ replayed: boolean; body: GrabbedView }> {
    // More than one round only when the journal had given Redis's share to another grabber.
    for (let round = 0; round < 3; round++) {
      let got = await this.deps.grabs.grab(packetId, userId, Date.now());
      if (got.outcome === 'missing') {
        if (!(await this.restore(packetId))) throw new ApiError(404, 'PACKET_NOT_FOUND', 'There is no such red packet (a just-sent one can take a moment to appear).');
        got = await this.deps.grabs.grab(packetId, userId, Date.now());
      }
      switch (got.outcome) {
        case 'claimed':
        case 'already': {
          let share = got.share;
          let replayed = got.outcome === 'already';
          if (got.outcome === 'claimed' || got.unsent) {
            const recorded = await journaled(
              () => this.claims.record({ packetId, senderId: got.senderId, currency: got.currency, userId, share: got.share, traceId }),
              'Your share could not be recorded yet; grab again to confirm it (you will get the same share).',
            );
            if (recorded === 'taken') continue;
            share = recorded.share;
            replayed ||= !recorded.first;
          }
          return { replayed, body: { packetId, userId, seq: share.seq, amount: share.amount, currency: got.currency, claimedAt: new Date(share.claimedAt).toISOString() } };
        }
        case 'empty':
          throw new ApiError(409, 'PACKET_EMPTY', `All ${got.count} shares of this red packet have been grabbed.`);
        case 'expired':
        case 'closed':
          throw new ApiError(410, 'PACKET_EXPIRED', 'This red packet has expired; what was left went back to its sender.');
        case 'missing':
          throw new ApiError(404, 'PACKET_NOT_FOUND', 'There is no such red packet.');
      }
    }
    throw new ApiError(503, 'PACKET_BUSY', 'This red packet is being restored; grab again in a moment.', { retryAfterMs: 1_000 });
  }

  private async restore(packetId: string): Promise<boolean> {
    try {
      return await this.deps.restorer.restore(packetId, Date.now() + (this.deps.restoreMs ?? 3_000));
    } catch (err) {
      // Restoring needs the log's end offsets; a Kafka outage is ours, answered like a lagging projection.
      if (err instanceof ProjectionBehind || isKafkaError(err)) {
        throw new ApiError(503, 'PACKET_BUSY', 'This red packet is being restored; grab again in a moment.');
      }
      throw err;
    }
  }

  /** A retry with the same key: the same packet (the journal produces its event). */
  private async replay(existing: RequestRow, cmd: CreatePacket & { greeting: string; expiryMs: number }): Promise<CreatedPacket> {
    const same = existing.amount === cmd.amount && existing.currency === cmd.currency && existing.share_count === cmd.count
      && existing.greeting === cmd.greeting && existing.expires_ms - existing.created_ms === cmd.expiryMs;
    if (!same) throw new ApiError(409, 'IDEMPOTENCY_CONFLICT', 'This Idempotency-Key was already used for a different red packet.');
    // Not put live from the request: it may have been grabbed since. If Redis lacks it, the
    // first grab restores it from the ledger, claims included.
    return this.view(existing);
  }

  /** Only after its creation is journaled: a grab's claim, journaled on the same shard, then always lands after it. */
  private async goLive(row: RequestRow): Promise<void> {
    await this.deps.grabs.init({
      packetId: row.packet_id, senderId: row.sender_id, currency: row.currency, count: row.share_count, expiresAt: row.expires_ms,
      remaining: row.shares.map((amount, seq) => ({ seq, amount: Number(amount) })), claims: [], closed: false, rest: 0,
    }).catch((err) => this.deps.log.warn('red packet not put live in Redis; the first grab restores it from the ledger', { err, packetId: row.packet_id }));
  }

  private async request(packetId: string, client: pg.Pool | pg.PoolClient = this.deps.pool): Promise<RequestRow | null> {
    const { rows } = await client.query<RequestRow>(`select ${REQUEST_COLUMNS} from packet_requests where packet_id = $1`, [packetId]);
    return rows[0] ?? null;
  }

  private view(row: RequestRow): CreatedPacket {
    return {
      packetId: row.packet_id, senderId: row.sender_id, amount: row.amount, currency: row.currency, count: row.share_count,
      greeting: row.greeting, createdAt: new Date(row.created_ms).toISOString(), expiresAt: new Date(row.expires_ms).toISOString(),
    };
  }
}
