import type pg from 'pg';
import type { LedgerEvent } from '../domain/events.ts';
import type { Posting, TokenRecord } from '../domain/ledger.ts';
import type { WithdrawalRecord } from '../domain/withdrawals.ts';
import { creditEventIdFor } from '../domain/grants.ts';
import { account, parseAccount } from '../domain/accounts.ts';
import type { Difference } from './differences.ts';
import { positionKey, type PartitionRange } from './replay.ts';
import {
  MOD, POSTING_HASH, TOKEN_HASH, TOKEN_STATE_HASH, WITHDRAWAL_HASH, WITHDRAWAL_STATE_HASH, postingHash, tokenHash, tokenStateHash, withdrawalHash, withdrawalStateHash,
} from './row-hash.ts';

/**
 * Compares the fold of the log with the Postgres projection, a chunk of events at a time.
 *
 * Each chunk is compared by checksum first: Postgres hashes the rows the chunk should have
 * produced, the audit hashes what the fold produced (row-hash.ts), and only a chunk whose
 * sums differ is fetched row by row to name the difference. A clean audit therefore moves a
 * few numbers per chunk between Postgres and the audit, not the projection.
 *
 * The row spellings below are what a difference shows as expected and actual: `*_ROW` (SQL)
 * and the matching `*Row` function (TypeScript) must produce the same text.
 */
export const POSTING_ROW = `p.event_id::text || '|' || p.leg || '|' || p.account || '|' || p.amount || '|' || p.currency`;
export const TOKEN_ROW = `t.token_id::text || '|' || t.user_id || '|' || t.activity_id || '|' || t.scene_id || '|' || t.order_no || '|' || t.amount || '|' || t.currency`;
export const WITHDRAWAL_ROW = `w.withdrawal_id::text || '|' || w.user_id || '|' || w.amount || '|' || w.currency`;

export const postingRow = (eventId: string, leg: number, p: Posting) => `${eventId}|${leg}|${p.account}|${p.amount}|${p.currency}`;
export const tokenRow = (t: TokenRecord) => `${t.tokenId}|${t.userId}|${t.activityId}|${t.sceneId}|${t.orderNo}|${t.amount}|${t.currency}`;
export const withdrawalRow = (w: WithdrawalRecord) => `${w.withdrawalId}|${w.userId}|${w.amount}|${w.currency}`;

/** The count and hash sum of some rows, as the SQL below computes them: `count:sum`. */
function digest<T>(rows: readonly T[], hash: (row: T) => number): string {
  let sum = 0;
  for (const r of rows) sum = (sum + hash(r)) % MOD;
  return `${rows.length}:${sum}`;
}

/** An event the fold applied (its first occurrence), with the postings it made. */
export interface FoldedEvent {
  event: LedgerEvent;
  postings: Posting[];
}

export interface Chunk {
  events: FoldedEvent[];
  tokens: TokenRecord[];
  withdrawals: WithdrawalRecord[];
}

/** Names what an event concerns, for the report. */
export function whoOf(event: LedgerEvent): Pick<Difference, 'activityId' | 'userId' | 'orderNo' | 'tokenId' | 'packetId' | 'payoutId'> {
  const d = event.data as unknown as Record<string, string | undefined>;
  return {
    activityId: d.activityId || undefined, userId: d.userId ?? d.senderId, orderNo: d.orderNo, tokenId: d.tokenId, packetId: d.packetId, payoutId: d.withdrawalId,
  };
}

export const drift = (message: string, fields: Partial<Difference>): Difference => ({ kind: 'projection_drift', message, events: [], repair: null, ...fields });

/** The offsets that bound the audit, as a Postgres table: unnest($1..$4) as b(topic, partition, s, e). */
export function boundsParams(ranges: readonly PartitionRange[]): [string[], number[], number[], number[]] {
  return [ranges.map((r) => r.topic), ranges.map((r) => r.partition), ranges.map((r) => r.start), ranges.map((r) => r.end)];
}
export const BOUNDS = 'unnest($1::text[], $2::int[], $3::bigint[], $4::bigint[]) as b(topic, partition, s, e)';

export class ProjectionCheck {
  private readonly ends: Map<string, number>;

  constructor(private readonly pool: pg.Pool, readonly ranges: readonly PartitionRange[]) {
    this.ends = new Map(ranges.map((r) => [positionKey(r.topic, r.partition), r.end]));
  }

  /** Whether a projected event lies after the audited range (the projection may be ahead of it). */
  afterEnd(pos: { topic: string; partition: number; offset: number } | undefined): boolean {
    if (!pos) return false;
    const end = this.ends.get(positionKey(pos.topic, pos.partition));
    return end !== undefined && pos.offset >= end;
  }

  async positions(eventIds: readonly string[]): Promise<Map<string, { topic: string; partition: number; offset: number }>> {
    if (eventIds.length === 0) return new Map();
    const { rows } = await this.pool.query<{ event_id: string; topic: string; partition: number; offset: number }>(
      'select event_id, topic, partition, "offset" from ledger_events where event_id = any($1::uuid[])', [eventIds],
    );
    return new Map(rows.map((r) => [r.event_id, r]));
  }

  /** The projection's claims and credits of these (packet, user) pairs, as amounts by `${packetId}/${userId}`. */
  async packetShares(pairs: readonly { packetId: string; userId: string }[]): Promise<{ claims: Map<string, number>; credits: Map<string, number> }> {
    const claims = new Map<string, number>();
    const credits = new Map<string, number>();
    if (pairs.length === 0) return { claims, credits };
    const { rows } = await this.pool.query<{ packet_id: string; user_id: string; claimed: number | null; credited: number | null }>(
      `select q.packet_id::text, q.user_id, c.amount as claimed, k.amount as credited
         from unnest($1::uuid[], $2::text[]) as q(packet_id, user_id)
         left join packet_claims c on c.packet_id = q.packet_id and c.user_id = q.user_id
         left join packet_credits k on k.packet_id = q.packet_id and k.user_id = q.user_id`,
      [pairs.map((p) => p.packetId), pairs.map((p) => p.userId)],
    );
    for (const r of rows) {
      if (r.claimed !== null) claims.set(`${r.packet_id}/${r.user_id}`, r.claimed);
      if (r.credited !== null) credits.set(`${r.packet_id}/${r.user_id}`, r.credited);
    }
    return { claims, credits };
  }

  /** Which of these packets the projection still shows open. */
  async openPackets(ids: readonly string[]): Promise<Set<string>> {
    if (ids.length === 0) return new Set();
    const { rows } = await this.pool.query<{ id: string }>(`select packet_id::text as id from packets where packet_id = any($1::uuid[]) and status = 'open'`, [ids]);
    return new Set(rows.map((r) => r.id));
  }

  /** Compares a chunk of folded events, and the records they created, with the projection. */
  async chunk(c: Chunk): Promise<Difference[]> {
    const eventIds = c.events.map((e) => e.event.data.eventId);
    const tokenIds = c.tokens.map((t) => t.tokenId);
    const withdrawalIds = c.withdrawals.map((w) => w.withdrawalId);
    const { rows } = await this.pool.query<Record<string, string>>(
      `select (select count(*) from ledger_events where event_id = any($1::uuid[]))::text as events,
              (select count(*) || ':' || coalesce(sum(${POSTING_HASH}) % ${MOD}, 0) from postings p where p.event_id = any($1::uuid[])) as postings,
              (select count(*) || ':' || coalesce(sum(${TOKEN_HASH}) % ${MOD}, 0) from tokens t where t.token_id = any($2::uuid[])) as tokens,
              (select count(*) || ':' || coalesce(sum(${WITHDRAWAL_HASH}) % ${MOD}, 0) from withdrawals w where w.withdrawal_id = any($3::uuid[])) as withdrawals`,
      [eventIds, tokenIds, withdrawalIds],
    );
    const got = rows[0]!;
    const out: Difference[] = [];
    const postings = c.events.flatMap((e) => e.postings.map((p, leg) => postingHash(e.event.data.eventId, leg, p)));
    if (got.events !== String(c.events.length) || got.postings !== digest(postings, (h) => h)) out.push(...(await this.eventDetail(c.events)));
    if (got.tokens !== digest(c.tokens, tokenHash)) out.push(...(await this.tokenDetail(c.tokens)));
    if (got.withdrawals !== digest(c.withdrawals, withdrawalHash)) out.push(...(await this.withdrawalDetail(c.withdrawals)));
    return out;
  }

  async eventDetail(events: FoldedEvent[]): Promise<Difference[]> {
    const ids = events.map((e) => e.event.data.eventId);
    const { rows } = await this.pool.query<{ event_id: string; projected: boolean; row: string | null }>(
      `select i.event_id::text, e.event_id is not null as projected, ${POSTING_ROW} as row
         from unnest($1::uuid[]) as i(event_id)
         left join ledger_events e on e.event_id = i.event_id
         left join postings p on p.event_id = i.event_id
        order by i.event_id, p.leg`, [ids],
    );
    const actual = new Map<string, { projected: boolean; rows: string[] }>();
    for (const r of rows) {
      const a = actual.get(r.event_id) ?? { projected: r.projected, rows: [] };
      if (r.row) a.rows.push(r.row);
      actual.set(r.event_id, a);
    }
    const out: Difference[] = [];
    for (const { event, postings } of events) {
      const id = event.data.eventId;
      const a = actual.get(id);
      const expected = postings.map((p, leg) => postingRow(id, leg, p)).join(' ; ');
      const got = (a?.rows ?? []).join(' ; ');
      if (!a?.projected) {
        out.push(drift(`${event.type} ${id} is in the log but not in the projection`, { ...whoOf(event), events: [id], expected: event.type, actual: 'missing' }));
      } else if (expected !== got) {
        out.push(drift(`the projection's postings for ${event.type} ${id} differ from the log's`, { ...whoOf(event), events: [id], expected, actual: got }));
      }
    }
    return out;
  }

  async tokenDetail(tokens: TokenRecord[]): Promise<Difference[]> {
    const { rows } = await this.pool.query<{ id: string; row: string }>(
      `select t.token_id::text as id, ${TOKEN_ROW} as row from tokens t where t.token_id = any($1::uuid[])`, [tokens.map((t) => t.tokenId)],
    );
    const actual = new Map(rows.map((r) => [r.id, r.row]));
    return tokens.flatMap((t) => {
      const got = actual.get(t.tokenId);
      if (got === tokenRow(t)) return [];
      return [drift(got ? `the projection's token ${t.tokenId} differs from the log's` : `token ${t.tokenId} is missing from the projection`, {
        activityId: t.activityId, userId: t.userId, orderNo: t.orderNo, tokenId: t.tokenId, events: [t.tokenId], expected: tokenRow(t), actual: got ?? 'missing',
      })];
    });
  }

  async withdrawalDetail(withdrawals: WithdrawalRecord[]): Promise<Difference[]> {
    const { rows } = await this.pool.query<{ id: string; row: string }>(
      `select w.withdrawal_id::text as id, ${WITHDRAWAL_ROW} as row from withdrawals w where w.withdrawal_id = any($1::uuid[])`, [withdrawals.map((w) => w.withdrawalId)],
    );
    const actual = new Map(rows.map((r) => [r.id, r.row]));
    return withdrawals.flatMap((w) => {
      const got = actual.get(w.withdrawalId);
      if (got === withdrawalRow(w)) return [];
      return [drift(got ? `the projection's withdrawal ${w.withdrawalId} differs from the log's` : `withdrawal ${w.withdrawalId} is missing from the projection`, {
        userId: w.userId, payoutId: w.withdrawalId, events: [w.withdrawalId], expected: withdrawalRow(w), actual: got ?? 'missing',
      })];
    });
  }

  /**
   * Token and withdrawal status at the end of the audited range. The projection shows the
   * status now; a difference explained by an event after the range (a credit or a payout
   * projected since) is not drift.
   */
  async states(tokens: TokenRecord[], withdrawals: WithdrawalRecord[]): Promise<Difference[]> {
    const { rows } = await this.pool.query<Record<string, string>>(
      `select (select count(*) || ':' || coalesce(sum(${TOKEN_STATE_HASH}) % ${MOD}, 0) from tokens t where t.token_id = any($1::uuid[])) as tokens,
              (select count(*) || ':' || coalesce(sum(${WITHDRAWAL_STATE_HASH}) % ${MOD}, 0) from withdrawals w where w.withdrawal_id = any($2::uuid[])) as withdrawals`,
      [tokens.map((t) => t.tokenId), withdrawals.map((w) => w.withdrawalId)],
    );
    const out: Difference[] = [];
    if (rows[0]!.tokens !== digest(tokens, tokenStateHash)) {
      const { rows: got } = await this.pool.query<{ id: string; status: string }>('select token_id::text as id, status from tokens where token_id = any($1::uuid[])', [tokens.map((t) => t.tokenId)]);
      const status = new Map(got.map((r) => [r.id, r.status]));
      const differing = tokens.filter((t) => status.has(t.tokenId) && status.get(t.tokenId) !== t.status);
      const pos = await this.positions(differing.map((t) => creditEventIdFor(t.tokenId)));
      for (const t of differing) {
        if (t.status === 'pending' && this.afterEnd(pos.get(creditEventIdFor(t.tokenId)))) continue;
        out.push(drift(`token ${t.tokenId} is ${status.get(t.tokenId)} in the projection but ${t.status} in the log`, {
          activityId: t.activityId, userId: t.userId, orderNo: t.orderNo, tokenId: t.tokenId, events: [t.tokenId, creditEventIdFor(t.tokenId)], expected: t.status, actual: status.get(t.tokenId),
        }));
      }
    }
    if (rows[0]!.withdrawals !== digest(withdrawals, withdrawalStateHash)) {
      const { rows: got } = await this.pool.query<{ id: string; status: string; provider_ref: string | null; resolved: string | null }>(
        'select withdrawal_id::text as id, status, provider_ref, resolved_event_id::text as resolved from withdrawals where withdrawal_id = any($1::uuid[])', [withdrawals.map((w) => w.withdrawalId)],
      );
      const byId = new Map(got.map((r) => [r.id, r]));
      const differing = withdrawals.filter((w) => {
        const r = byId.get(w.withdrawalId);
        return r && `${r.status}|${r.provider_ref ?? ''}` !== `${w.status}|${w.providerRef ?? ''}`;
      });
      const pos = await this.positions(differing.flatMap((w) => byId.get(w.withdrawalId)?.resolved ?? []));
      for (const w of differing) {
        const r = byId.get(w.withdrawalId)!;
        if (w.status === 'withdrawing' && r.resolved && this.afterEnd(pos.get(r.resolved))) continue;
        out.push(drift(`withdrawal ${w.withdrawalId} is ${r.status} in the projection but ${w.status} in the log`, {
          userId: w.userId, payoutId: w.withdrawalId, events: [w.withdrawalId, ...(w.resolvedEventId ? [w.resolvedEventId] : [])],
          expected: `${w.status} ${w.providerRef ?? ''}`.trim(), actual: `${r.status} ${r.provider_ref ?? ''}`.trim(),
        }));
      }
    }
    return out;
  }

  /** Which of these tokens are still pending, or withdrawals still in flight, in the projection now. */
  async stillOpen(what: 'tokens' | 'withdrawals', ids: readonly string[]): Promise<Set<string>> {
    if (ids.length === 0) return new Set();
    const sql = what === 'tokens'
      ? `select token_id::text as id from tokens where token_id = any($1::uuid[]) and status = 'pending'`
      : `select withdrawal_id::text as id from withdrawals where withdrawal_id = any($1::uuid[]) and status = 'withdrawing'`;
    const { rows } = await this.pool.query<{ id: string }>(sql, [ids]);
    return new Set(rows.map((r) => r.id));
  }

  /** Per-currency sums of the projection's postings for events within the range (I1 over the range). */
  async imbalances(): Promise<Difference[]> {
    const { rows } = await this.pool.query<{ currency: string; sum: number }>(
      `select p.currency, sum(p.amount)::bigint as sum
         from ${BOUNDS} join ledger_events e on e.topic = b.topic and e.partition = b.partition and e."offset" >= b.s and e."offset" < b.e
         join postings p on p.event_id = e.event_id
        group by p.currency having sum(p.amount) <> 0`, boundsParams(this.ranges),
    );
    return rows.map((r) => ({
      kind: 'ledger_imbalance' as const, currency: r.currency, expected: 0, actual: r.sum, events: [], repair: null,
      message: `the projection's postings in this range sum to ${r.sum} ${r.currency}, not zero`,
    }));
  }

  /** The balance movement of accounts by events before the range (the opening state of a range audit). */
  async sumsBefore(accounts: string[]): Promise<Map<string, number>> {
    if (accounts.length === 0) return new Map();
    const { rows } = await this.pool.query<{ account: string; sum: number }>(
      `select p.account, sum(p.amount)::bigint as sum
         from postings p join ledger_events e on e.event_id = p.event_id
         join ${BOUNDS} on e.topic = b.topic and e.partition = b.partition and e."offset" < b.s
        where p.account = any($5) group by p.account`, [...boundsParams(this.ranges), accounts],
    );
    return new Map(rows.map((r) => [r.account, r.sum]));
  }

  /** What each activity's fundings brought before the range (the only postings that credit a budget are fundings). */
  async fundedBefore(activityIds: string[]): Promise<Map<string, number>> {
    if (activityIds.length === 0) return new Map();
    const { rows } = await this.pool.query<{ account: string; sum: number }>(
      `select p.account, sum(p.amount)::bigint as sum
         from postings p join ledger_events e on e.event_id = p.event_id
         join ${BOUNDS} on e.topic = b.topic and e.partition = b.partition and e."offset" < b.s
        where p.account = any($5) and p.amount > 0 group by p.account`, [...boundsParams(this.ranges), activityIds.map(account.activityBudget)],
    );
    const byAccount = new Map(rows.map((r) => [r.account, r.sum]));
    return new Map(activityIds.map((id) => [id, byAccount.get(account.activityBudget(id)) ?? 0]));
  }

  /**
   * Every balance of the projection against the fold's, as of the end of the range (a
   * whole-log audit). Postings of events after the range are taken off the stored balance.
   */
  async balances(fold: ReadonlyMap<string, { currency: string; balance: number }>, only?: (account: string) => boolean): Promise<Difference[]> {
    const { rows: after } = await this.pool.query<{ account: string; sum: number }>(
      `select p.account, sum(p.amount)::bigint as sum
         from ${BOUNDS} join ledger_events e on e.topic = b.topic and e.partition = b.partition and e."offset" >= b.e
         join postings p on p.event_id = e.event_id group by p.account`, boundsParams(this.ranges),
    );
    const later = new Map(after.map((r) => [r.account, r.sum]));
    const out: Difference[] = [];
    const seen = new Set<string>();
    const compare = (account: string, stored: number | undefined) => {
      seen.add(account);
      const expected = fold.get(account)?.balance ?? 0;
      const actual = stored === undefined ? undefined : stored - (later.get(account) ?? 0);
      if (actual === expected || (actual === undefined && expected === 0)) return;
      out.push(drift(actual === undefined ? `account ${account} has no balance in the projection` : `the projection's balance of ${account} differs from the log's`, {
        account, currency: fold.get(account)?.currency, expected, actual: actual ?? 'missing', ...ownerOf(account),
      }));
    };
    let cursor = '';
    for (;;) {
      const { rows } = await this.pool.query<{ account: string; balance: number }>(
        'select account, balance from account_balances where account > $1 order by account limit 10000', [cursor],
      );
      for (const r of rows) if (!only || only(r.account)) compare(r.account, r.balance);
      if (rows.length < 10_000) break;
      cursor = rows[rows.length - 1]!.account;
    }
    for (const account of fold.keys()) if (!seen.has(account) && (!only || only(account))) compare(account, undefined);
    return out;
  }
}

function ownerOf(acct: string): Partial<Difference> {
  const a = parseAccount(acct);
  if (a.kind === 'user') return { userId: a.ownerId ?? undefined };
  if (a.kind === 'activity') return { activityId: a.ownerId ?? undefined };
  return {};
}
