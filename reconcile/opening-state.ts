import type pg from 'pg';
import { account } from '../domain/accounts.ts';
import { stateReadBy, type MemoryLedger } from '../domain/ledger.ts';
import type { Currency } from '../domain/money.ts';
import type { LedgerEvent } from '../domain/events.ts';
import { creditEventIdFor } from '../domain/grants.ts';
import { CLAIM_COLUMNS, PACKET_COLUMNS, TOKEN_COLUMNS, WITHDRAWAL_COLUMNS, claimFromRow, packetFromRow, tokenFromRow, withdrawalFromRow } from '../projections/ledger-store.ts';
import { claimEventIdFor, refundEventIdFor, type PacketClaimRecord, type PacketRecord } from '../domain/packets.ts';
import { positionKey, type PartitionRange } from './replay.ts';
import type { ProjectionCheck } from './projection-check.ts';

/**
 * A time-range audit starts mid-log, so the fold needs the state as it was when the range
 * began: which events were already applied, the tokens, withdrawals and red packets the
 * range's events refer to, and the available balances the funds rule reads. That state
 * comes from the projection, rewound to the range's start offsets by the log position of
 * each projected event. A range audit therefore trusts the projection for what happened
 * before its range; the audit of that earlier range (or a whole-log audit) checks it.
 */
export class OpeningState {
  private readonly starts: Map<string, number>;
  private readonly seededBalances = new Set<string>();

  constructor(private readonly pool: pg.Pool, ranges: readonly PartitionRange[], private readonly check: ProjectionCheck) {
    this.starts = new Map(ranges.map((r) => [positionKey(r.topic, r.partition), r.start]));
  }

  private before(pos: { topic: string; partition: number; offset: number } | undefined): boolean {
    if (!pos) return false;
    const start = this.starts.get(positionKey(pos.topic, pos.partition));
    return start === undefined || pos.offset < start;
  }

  /** Seeds `mem` with what the batch's events need from before the range. */
  async seed(mem: MemoryLedger, batch: readonly LedgerEvent[]): Promise<void> {
    const tokenIds = new Set<string>();
    const withdrawalIds = new Set<string>();
    const packetIds = new Set<string>();
    const accounts = new Map<string, Currency>();
    for (const event of batch) {
      const reads = stateReadBy(event);
      if (reads.token && !mem.tokens.has(reads.token)) tokenIds.add(reads.token);
      if (reads.withdrawal && !mem.withdrawals.has(reads.withdrawal)) withdrawalIds.add(reads.withdrawal);
      if (reads.packet && !mem.packets.has(reads.packet)) packetIds.add(reads.packet);
      // Every available balance the event touches, not only the one it reads: an event earlier
      // in the range may credit the account a later one reads, and the opening balance must
      // be in place before the first of them.
      const d = event.data;
      const owners = ['userId' in d ? d.userId : null, 'senderId' in d ? d.senderId : null];
      for (const owner of owners) {
        const acct = owner === null ? null : account.user(owner, 'available');
        if (acct && !this.seededBalances.has(acct) && 'currency' in d) accounts.set(acct, d.currency);
      }
      if (reads.balance && !this.seededBalances.has(reads.balance) && 'currency' in d) accounts.set(reads.balance, d.currency);
    }
    const [positions, tokens, withdrawals, packets, balances] = await Promise.all([
      this.check.positions(batch.map((e) => e.data.eventId)),
      this.tokens([...tokenIds]),
      this.withdrawals([...withdrawalIds]),
      this.packets([...packetIds]),
      this.check.sumsBefore([...accounts.keys()]),
    ]);
    for (const [id, pos] of positions) if (this.before(pos)) mem.seedApplied(id);
    for (const t of tokens) mem.seedToken(t);
    for (const w of withdrawals) mem.seedWithdrawal(w);
    for (const { packet, claims } of packets) {
      mem.seedPacket(packet);
      for (const c of claims) mem.seedPacketClaim(c);
    }
    for (const [acct, currency] of accounts) {
      this.seededBalances.add(acct);
      // An account the range touched before this batch already carries its opening balance.
      if (!mem.balances.has(acct)) mem.seedBalance(acct, currency, balances.get(acct) ?? 0);
    }
  }

  /** Packets created before the range, rewound to its start: only the claims and refund before it count. */
  private async packets(ids: string[]): Promise<{ packet: PacketRecord; claims: PacketClaimRecord[] }[]> {
    if (ids.length === 0) return [];
    const [{ rows: packetRows }, { rows: claimRows }] = await Promise.all([
      this.pool.query(`select ${PACKET_COLUMNS} from packets p where p.packet_id = any($1::uuid[])`, [ids]),
      this.pool.query(`select ${CLAIM_COLUMNS} from packet_claims c where c.packet_id = any($1::uuid[])`, [ids]),
    ]);
    const claims = claimRows.map(claimFromRow);
    const positions = await this.check.positions([
      ...ids, ...ids.map(refundEventIdFor), ...claims.map((c) => claimEventIdFor(c.packetId, c.userId)),
    ]);
    const before = (eventId: string) => this.before(positions.get(eventId));
    return packetRows.map(packetFromRow).filter((p) => before(p.packetId)).map((p) => {
      const earlier = claims.filter((c) => c.packetId === p.packetId && before(claimEventIdFor(c.packetId, c.userId)));
      if (p.status === 'rejected' || (p.status === 'refunded' && before(refundEventIdFor(p.packetId)))) return { packet: p, claims: earlier };
      const claimedCount = earlier.length;
      const finished = claimedCount === p.count;
      const last = Math.max(...earlier.map((c) => c.claimedAt));
      return {
        packet: {
          ...p, claimedCount, claimedAmount: earlier.reduce((s, c) => s + c.amount, 0), refundedAmount: 0,
          status: finished ? 'finished' as const : 'open' as const, closedAt: finished ? last : null,
        },
        claims: earlier,
      };
    });
  }

  private async tokens(ids: string[]) {
    if (ids.length === 0) return [];
    const { rows } = await this.pool.query(
      `select ${TOKEN_COLUMNS}, i.topic, i.partition, i."offset", c.topic as c_topic, c.partition as c_partition, c."offset" as c_offset
         from unnest($1::uuid[], $2::uuid[]) as q(token_id, credit_id)
         join tokens t on t.token_id = q.token_id
         join ledger_events i on i.event_id = q.token_id
         left join ledger_events c on c.event_id = q.credit_id`,
      [ids, ids.map(creditEventIdFor)],
    );
    return rows
      .filter((r) => this.before(r))
      .map((r) => {
        const t = tokenFromRow(r);
        const credited = r.c_topic !== null && this.before({ topic: r.c_topic, partition: r.c_partition, offset: r.c_offset });
        return credited ? t : { ...t, status: 'pending' as const, creditedAt: null };
      });
  }

  private async withdrawals(ids: string[]) {
    if (ids.length === 0) return [];
    const { rows } = await this.pool.query(
      `select ${WITHDRAWAL_COLUMNS}, r.topic, r.partition, r."offset", s.topic as s_topic, s.partition as s_partition, s."offset" as s_offset
         from withdrawals w
         join ledger_events r on r.event_id = w.withdrawal_id
         left join ledger_events s on s.event_id = w.resolved_event_id
        where w.withdrawal_id = any($1::uuid[])`,
      [ids],
    );
    return rows
      .filter((r) => this.before(r))
      .map((r) => {
        const w = withdrawalFromRow(r);
        const resolved = r.s_topic !== null && this.before({ topic: r.s_topic, partition: r.s_partition, offset: r.s_offset });
        return resolved ? w : { ...w, status: 'withdrawing' as const, resolvedAt: null, resolvedEventId: null, reason: null, providerRef: null };
      });
  }
}
