import type pg from 'pg';
import { account } from '../domain/accounts.ts';
import { stateReadBy, type MemoryLedger } from '../domain/ledger.ts';
import type { Currency } from '../domain/money.ts';
import { creditEventIdFor } from '../domain/grants.ts';
import { TOKEN_COLUMNS, WITHDRAWAL_COLUMNS, tokenFromRow, withdrawalFromRow } from '../projections/ledger-store.ts';
import { positionKey, type PartitionRange, type ReplayedEvent } from './replay.ts';
import type { ProjectionCheck } from './projection-check.ts';

/**
 * A time-range audit starts mid-log, so the fold needs the state as it was when the range
 * began: which events were already applied, the tokens and withdrawals the range's events
 * refer to, and the users' available balances (the withdrawal rule reads them). That state
 * comes from the projection, rewound to the range's start offsets by the log position of
 * each projected event. A range audit therefore trusts the projection for what happened
 * before its range; the audit of that earlier range (or a whole-log audit) checks it.
 */
export class OpeningState {
  private readonly starts: Map<string, number>;
  private readonly seededUsers = new Set<string>();

  constructor(private readonly pool: pg.Pool, ranges: readonly PartitionRange[], private readonly check: ProjectionCheck) {
    this.starts = new Map(ranges.map((r) => [positionKey(r.topic, r.partition), r.start]));
  }

  private before(pos: { topic: string; partition: number; offset: number } | undefined): boolean {
    if (!pos) return false;
    const start = this.starts.get(positionKey(pos.topic, pos.partition));
    return start === undefined || pos.offset < start;
  }

  /** Seeds `mem` with what the batch's events need from before the range. */
  async seed(mem: MemoryLedger, batch: readonly ReplayedEvent[]): Promise<void> {
    const tokenIds = new Set<string>();
    const withdrawalIds = new Set<string>();
    const users = new Map<string, Currency>();
    for (const { event } of batch) {
      const reads = stateReadBy(event);
      if (reads.token && !mem.tokens.has(reads.token)) tokenIds.add(reads.token);
      if (reads.withdrawal && !mem.withdrawals.has(reads.withdrawal)) withdrawalIds.add(reads.withdrawal);
      if ('userId' in event.data && 'currency' in event.data && !this.seededUsers.has(event.data.userId)) users.set(event.data.userId, event.data.currency);
    }
    const [positions, tokens, withdrawals, balances] = await Promise.all([
      this.check.positions(batch.map((e) => e.event.data.eventId)),
      this.tokens([...tokenIds]),
      this.withdrawals([...withdrawalIds]),
      this.check.sumsBefore([...users.keys()].map((u) => account.user(u, 'available'))),
    ]);
    for (const [id, pos] of positions) if (this.before(pos)) mem.seedApplied(id);
    for (const t of tokens) mem.seedToken(t);
    for (const w of withdrawals) mem.seedWithdrawal(w);
    for (const [user, currency] of users) {
      this.seededUsers.add(user);
      const acct = account.user(user, 'available');
      if (!mem.balances.has(acct)) mem.seedBalance(acct, currency, balances.get(acct) ?? 0);
    }
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
