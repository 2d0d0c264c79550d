import type pg from 'pg';
import { bestLuck, type PacketRecord } from '../domain/packets.ts';
import type { PacketGrabs, PacketState } from '../infra/packet-grabs.ts';
import { ProjectionBehind, type ProjectionFence } from '../infra/projection-fence.ts';
import type { Journal } from '../infra/journal.ts';
import { CLAIM_COLUMNS, PACKET_COLUMNS, claimFromRow, packetFromRow } from './ledger-store.ts';

export interface PacketClaimView {
  userId: string;
  seq: number;
  amount: number;
  claimedAt: string;
  /** When the share reached the grabber's available balance; null while it is on its way. */
  creditedAt: string | null;
}

export interface PacketDetails {
  packet: PacketRecord;
  claims: PacketClaimView[];
  best: PacketClaimView | null;
}

const iso = (ms: number) => new Date(ms).toISOString();

/** Reads red packets from the ledger projection. */
export class PacketReader {
  constructor(private readonly pool: pg.Pool) {}

  async packet(packetId: string): Promise<PacketRecord | null> {
    const { rows } = await this.pool.query(`select ${PACKET_COLUMNS} from packets p where p.packet_id = $1`, [packetId]);
    return rows[0] ? packetFromRow(rows[0]) : null;
  }

  /** Who got what and when, in grab order, and the best luck once no share can change hands. */
  async details(packetId: string): Promise<PacketDetails | null> {
    const packet = await this.packet(packetId);
    if (!packet) return null;
    const { rows } = await this.pool.query(
      `select ${CLAIM_COLUMNS}, (extract(epoch from k.credited_at) * 1000)::bigint as credited_ms
         from packet_claims c left join packet_credits k on k.packet_id = c.packet_id and k.user_id = c.user_id
        where c.packet_id = $1 order by c.claimed_at, c.seq`,
      [packetId],
    );
    const claims = rows.map((r) => ({ ...claimFromRow(r), creditedMs: r.credited_ms as number | null }));
    const best = packet.status === 'finished' || packet.status === 'refunded' ? bestLuck(claims) : null;
    const view = (c: (typeof claims)[number]): PacketClaimView => ({
      userId: c.userId, seq: c.seq, amount: c.amount, claimedAt: iso(c.claimedAt), creditedAt: c.creditedMs === null ? null : iso(c.creditedMs),
    });
    return { packet, claims: claims.map(view), best: best ? view(best) : null };
  }

  /** The sender of a packet the ledger has, or that the API accepted. */
  async senderOf(packetId: string): Promise<string | null> {
    const { rows } = await this.pool.query<{ sender_id: string }>(
      'select sender_id from packets where packet_id = $1 union all select sender_id from packet_requests where packet_id = $1 limit 1', [packetId],
    );
    return rows[0]?.sender_id ?? null;
  }

  /** A projected packet as Redis holds it: the shares not yet claimed, the claims, closed or not. */
  async liveState(packetId: string): Promise<PacketState | null> {
    const packet = await this.packet(packetId);
    if (!packet) return null;
    const { rows } = await this.pool.query(`select ${CLAIM_COLUMNS} from packet_claims c where c.packet_id = $1`, [packetId]);
    const claims = rows.map(claimFromRow);
    const taken = new Set(claims.map((c) => c.seq));
    const closed = packet.status !== 'open';
    return {
      packetId, senderId: packet.senderId, currency: packet.currency, count: packet.count, expiresAt: packet.expiresAt,
      remaining: closed ? [] : packet.shares.flatMap((amount, seq) => (taken.has(seq) ? [] : [{ seq, amount }])),
      claims: claims.map((c) => ({ userId: c.userId, share: { seq: c.seq, amount: c.amount, claimedAt: c.claimedAt } })),
      closed, rest: packet.refundedAmount,
    };
  }
}

/**
 * Puts a packet back into Redis from the ledger when Redis does not have it (a restart of
 * Redis, an evicted key, a packet created while Redis was down). It first waits until every
 * claim the journal accepted is in the log, then until the sender's partition, which holds
 * every claim of the packet, is projected, so the shares it restores are those no claim has
 * taken. (A claim still on its way to the journal is caught by the journal's share guard.)
 */
export class PacketRestorer {
  constructor(
    private readonly reader: PacketReader, private readonly grabs: PacketGrabs, private readonly fence: ProjectionFence,
    private readonly journal: Pick<Journal, 'producedUpTo' | 'position'>,
  ) {}

  /** False when the ledger has no such packet. */
  async restore(packetId: string, deadline: number): Promise<boolean> {
    const sender = await this.reader.senderOf(packetId);
    if (sender === null) return false;
    const upTo = await this.journal.position();
    while (!(await this.journal.producedUpTo(upTo))) {
      if (Date.now() > deadline) throw new ProjectionBehind(`the command journal has not produced what it accepted up to ${upTo}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    await this.fence.catchUp(sender, deadline);
    const state = await this.reader.liveState(packetId);
    if (!state) return false;
    await this.grabs.init({ ...state, restored: true });
    return true;
  }
}
