import { createHash } from 'node:crypto';
import type pg from 'pg';
import {
  applyAll, DAY_MS, decideClaim, decideFreeze, decideGrant, decideRedeem, decideReissue, decideTimeouts, decideUnfreeze,
  nextHoldExpiry, packGrantIdFor, reissueNeeded, stockLevel,
  type CommandContext, type CouponEvent, type CouponIssue, type CouponRefusal, type Decision, type GiftPack, type PackRecord, type Platform, type StockLevel,
} from '../domain/coupons.ts';
import type { Currency } from '../domain/money.ts';
import type { Journal } from './journal.ts';

/**
 * The command side of coupon gift packs, in Postgres: stock is taken with a conditional
 * update (C1), each pack's state is one row locked by every command on it (so racing
 * freezes, redeems and reissues of a pack serialise), and the events decided are written to
 * the command journal (infra/journal.ts) in the same transaction, in decision order; its
 * relay produces them. A decision is therefore never lost and never half-made: stock, state
 * and events commit together, whether or not Kafka is up.
 */
export interface GrantCommand {
  activityId: string; orderNo: string; userId: string; packId: string; platform: Platform;
}

export interface Audit { grantedBy: string; clientAddress: string; requestId: string; traceId?: string }

/** A refusal of the rules (CouponRefusal) or of the command side: unknown pack, order conflict, stock. */
export interface Refusal { code: CouponRefusal['code'] | 'PACK_NOT_FOUND' | 'ORDER_CONFLICT' | 'OUT_OF_STOCK'; message: string; details?: Record<string, unknown> }

export type CommandResult =
  | { ok: true; record: PackRecord; replayed: boolean; couponId?: string; stock?: StockLevel[] }
  | { ok: false; status: number; refusal: Refusal };

type Decided = Omit<Decision, 'refusal'> & { refusal?: Refusal };

interface TemplateRow { template_id: string; platform: Platform; face_value: string; currency: Currency; valid_days: number }
interface StockRow { template_id: string; total_stock: string; taken: string; low_stock_percent: number | null }

const fingerprintOf = (cmd: GrantCommand) => createHash('sha256').update(JSON.stringify([cmd.userId, cmd.packId, cmd.platform])).digest('base64url');

const refusalStatus: Record<string, number> = { COUPON_NOT_FOUND: 404, PACK_NOT_FOUND: 404 };

export class CouponCommands {
  private readonly terms: PackTerms;

  constructor(private readonly deps: {
    pool: pg.Pool; journal: Journal; lowStockPercent: number; now?: () => number;
  }) {
    this.terms = new PackTerms(deps.pool);
  }

  private now(): number {
    return (this.deps.now ?? Date.now)();
  }

  async grant(cmd: GrantCommand, audit: Audit): Promise<CommandResult> {
    return retryDeadlocks(() => this.grantOnce(cmd, audit));
  }

  private async grantOnce(cmd: GrantCommand, audit: Audit): Promise<CommandResult> {
    const grantId = packGrantIdFor(cmd.activityId, cmd.orderNo);
    const decided = await this.decideGrantTx(grantId, cmd, audit);
    // After the connection is back in the pool: a command never holds one connection while waiting for another.
    if (decided === 'replay') {
      const { rows } = await this.deps.pool.query<{ fingerprint: string; record: PackRecord }>('select fingerprint, record from pack_states where grant_id=$1', [grantId]);
      if (rows[0]!.fingerprint !== fingerprintOf(cmd)) {
        return { ok: false, status: 409, refusal: { code: 'ORDER_CONFLICT', message: `Order ${cmd.orderNo} was already used for a different gift pack grant; an order number identifies one grant.` } };
      }
      return { ok: true, record: rows[0]!.record, replayed: true, stock: await this.stockOf(rows[0]!.record.coupons.map((c) => c.templateId)) };
    }
    if ('empty' in decided) {
      const stock = await this.stockOf(decided.templateIds);
      return { ok: false, status: 409, refusal: { code: 'OUT_OF_STOCK', message: `Gift pack ${cmd.packId} is out of stock on ${cmd.platform}: ${decided.empty.join(', ')} has none left.`, details: { exhausted: decided.empty, stock } } };
    }
    if (!('events' in decided)) return decided;
    this.deps.journal.committed();
    const stock = decided.levels?.map((t) => this.levelOf(t)) ?? await this.stockOf(decided.record.coupons.map((c) => c.templateId));
    return { ok: true, record: decided.record, replayed: false, stock };
  }

  /** One transaction: the order's row (or 'replay' when the order exists), the event in the journal, and the stock — or nothing. */
  private async decideGrantTx(grantId: string, cmd: GrantCommand, audit: Audit): Promise<'replay' | { empty: string[]; templateIds: string[] } | { record: PackRecord; events: CouponEvent[]; levels: StockRow[] | null } | CommandResult> {
    const terms = await this.terms.get(cmd.packId, cmd.platform);
    if (!terms) return { ok: false, status: 404, refusal: { code: 'PACK_NOT_FOUND', message: `There is no gift pack "${cmd.packId}".` } };
    const now = this.now();
    const coupons = terms.map(({ slot, template: t }): Omit<CouponIssue, 'couponId'> => ({
      templateId: t.template_id, slot, platform: cmd.platform, faceValue: Number(t.face_value), currency: t.currency, expiresAt: now + t.valid_days * DAY_MS,
    }));
    const ctx: CommandContext = { now, activityId: cmd.activityId, traceId: audit.traceId ?? audit.requestId };
    const event: CouponEvent = { type: 'GiftPackGranted', data: decideGrant({ ...cmd, coupons, grantedBy: audit.grantedBy, clientAddress: audit.clientAddress, requestId: audit.requestId }, ctx) };
    const record = applyAll(undefined, [event])!;
    const templateIds = coupons.map((c) => c.templateId);
    const client = await this.deps.pool.connect();
    try {
      await client.query('begin');
      if (!(await this.save(client, record, [event], { fingerprint: fingerprintOf(cmd) })).created) {
        // A retry (or a racing copy) of an order: the first decision stands.
        await client.query('rollback');
        return 'replay';
      }
      // Stock last: every grant of the pack contends for these rows, so they are held only for this update and the commit.
      const taken = await this.takeStock(client, templateIds);
      if (!taken.ok) {
        await client.query('rollback');
        return { empty: taken.empty, templateIds };
      }
      await client.query('commit');
      return { record, events: [event], levels: taken.levels };
    } catch (err) {
      await client.query('rollback').catch(() => {});
      throw err;
    } finally {
      client.release();
    }
  }

  /** The user claims a pack in the wallet. */
  async claim(userId: string, grantId: string): Promise<CommandResult> {
    return this.onPack({ grantId }, userId, (r, ctx) => decideClaim(r, ctx));
  }

  async freeze(cmd: { userId: string; couponId: string; paymentId: string; platform: Platform; holdMs: number }): Promise<CommandResult> {
    return this.onCoupon(cmd.couponId, cmd.userId, async (r, ctx, client) => {
      const reissue = reissueNeeded(r, cmd.couponId, cmd.platform);
      let events: CouponEvent[] = [];
      let record = r;
      if (reissue) {
        // A refused freeze leaves nothing behind, the reissue's stock included; the timeouts before it stand.
        await client.query('savepoint reissue');
        const pack = await this.packOf(client, r.packId);
        const slots = (pack?.slots ?? []).filter((s) => reissue.slots.includes(s.slot));
        const templates = await this.templatesOf(client, slots.map((s) => s[cmd.platform]));
        const taken = await this.takeStock(client, slots.map((s) => s[cmd.platform]));
        if (!pack || !taken.ok) {
          await client.query('rollback to savepoint reissue');
          return { events: [], refusal: { code: 'OUT_OF_STOCK', message: `No ${cmd.platform} coupons are left for this gift pack; it can only be used on ${r.platform}.` } };
        }
        const coupons = slots.map((s): Omit<CouponIssue, 'couponId'> => {
          const t = templates.get(s[cmd.platform])!;
          // The reissued coupon is the same benefit: it expires with the one it matches.
          const original = r.coupons.find((c) => c.slot === s.slot)!;
          return { templateId: t.template_id, slot: s.slot, platform: cmd.platform, faceValue: Number(t.face_value), currency: t.currency, expiresAt: original.expiresAt };
        });
        events = [decideReissue(r, cmd.platform, coupons, ctx)];
        record = applyAll(r, events)!;
      }
      const d = decideFreeze(record, cmd, ctx);
      if (d.refusal) {
        if (reissue) await client.query('rollback to savepoint reissue');
        return d;
      }
      return { ...d, events: [...events, ...d.events] };
    });
  }

  async unfreeze(cmd: { userId: string; couponId: string; paymentId: string }): Promise<CommandResult> {
    return this.onCoupon(cmd.couponId, cmd.userId, (r, ctx) => decideUnfreeze(r, cmd, ctx));
  }

  async redeem(cmd: { userId: string; couponId: string; paymentId: string }): Promise<CommandResult> {
    return this.onCoupon(cmd.couponId, cmd.userId, (r, ctx) => decideRedeem(r, cmd, ctx));
  }

  /** Keeper: unfreezes holds past their end, oldest first. Returns how many packs it touched. */
  async expireHolds(limit = 200): Promise<number> {
    const { rows } = await this.deps.pool.query<{ grant_id: string; user_id: string }>(
      'select grant_id, user_id from pack_states where hold_expires_at <= $1 order by hold_expires_at limit $2', [new Date(this.now()).toISOString(), limit],
    );
    for (const r of rows) await this.onPack({ grantId: r.grant_id }, r.user_id, () => ({ events: [] }));
    return rows.length;
  }

  private onCoupon(couponId: string, userId: string, decide: (r: PackRecord, ctx: CommandContext, client: pg.PoolClient) => Decided | Promise<Decided>): Promise<CommandResult> {
    return this.onPack({ couponId }, userId, decide);
  }

  /**
   * Runs a decision on a pack under its row lock: holds past their end are unfrozen first
   * (so every transition is an event, and a late redeem finds the hold gone), then the
   * command decides on the result.
   */
  private onPack(
    pack: { grantId: string } | { couponId: string }, userId: string, decide: (r: PackRecord, ctx: CommandContext, client: pg.PoolClient) => Decided | Promise<Decided>,
  ): Promise<CommandResult> {
    return retryDeadlocks(() => this.onPackOnce(pack, userId, decide));
  }

  private async onPackOnce(
    pack: { grantId: string } | { couponId: string }, userId: string, decide: (r: PackRecord, ctx: CommandContext, client: pg.PoolClient) => Decided | Promise<Decided>,
  ): Promise<CommandResult> {
    const client = await this.deps.pool.connect();
    let result: CommandResult;
    let written = false;
    try {
      await client.query('begin');
      const { rows } = await client.query<{ record: PackRecord }>(
        'grantId' in pack
          ? 'select record from pack_states where grant_id = $1 for update'
          : 'select record from pack_states where grant_id = (select grant_id from coupon_owners where coupon_id = $1) for update',
        ['grantId' in pack ? pack.grantId : pack.couponId],
      );
      const stored = rows[0]?.record;
      if (!stored || stored.userId !== userId) {
        await client.query('rollback');
        return 'couponId' in pack ? notFound(pack.couponId) : { ok: false, status: 404, refusal: { code: 'PACK_NOT_FOUND', message: 'There is no such gift pack in this wallet.' } };
      }
      const grantId = stored.grantId;
      const ctx: CommandContext = { now: this.now(), activityId: stored.activityId, traceId: grantId };
      const timeouts = decideTimeouts(stored, ctx);
      const current = applyAll(stored, timeouts)!;
      const d = await decide(current, ctx, client);
      const events = d.refusal ? timeouts : [...timeouts, ...d.events];
      const record = applyAll(stored, events)!;
      if (events.length > 0) {
        await this.save(client, record, events);
        written = true;
      }
      await client.query('commit');
      result = d.refusal
        ? { ok: false, status: refusalStatus[d.refusal.code] ?? 409, refusal: d.refusal }
        : { ok: true, record, replayed: d.replayed ?? false, ...(d.couponId ? { couponId: d.couponId } : {}) };
    } catch (err) {
      await client.query('rollback').catch(() => {});
      throw err;
    } finally {
      client.release();
    }
    if (written) this.deps.journal.committed();
    return result;
  }

  /**
   * Writes a decision in one statement: the pack's state (a new pack's row, or the locked one
   * replaced), its new coupons' owners, and its events in the journal (each its own command,
   * keyed by its derived id, on the owner's shard: in decision order). For a new pack, a row
   * already there (another copy of the order won) writes nothing, and the answer is false.
   */
  private async save(client: pg.PoolClient, record: PackRecord, events: readonly CouponEvent[], create?: { fingerprint: string }): Promise<{ created: boolean }> {
    const expiry = nextHoldExpiry(record);
    const fresh = events.flatMap((e) => (e.type === 'GiftPackGranted' || e.type === 'CouponsReissued' ? e.data.coupons : []));
    const state = create
      ? `insert into pack_states(grant_id, activity_id, order_no, user_id, fingerprint, record, hold_expires_at) values ($1, $8, $9, $10, $11, $2, $3)
         on conflict do nothing returning grant_id`
      : 'update pack_states set record = $2, hold_expires_at = $3 where grant_id = $1 returning grant_id';
    const { rows } = await client.query<{ n: number }>(
      `with state as (${state}),
            owners as (insert into coupon_owners(coupon_id, grant_id) select c, s.grant_id from unnest($4::uuid[]) as c, state s),
            events as (select e.id, e.event, e.n from unnest($6::uuid[], $7::jsonb[]) with ordinality as e(id, event, n), state s),
            journaled as (insert into journal(command_key, answer) select 'coupon:' || id, '{}'::jsonb from events
                         on conflict (command_key) do nothing returning command_key),
            outbox as (insert into journal_outbox(shard, events)
                      select $5::smallint, jsonb_build_array(e.event) from events e join journaled j on j.command_key = 'coupon:' || e.id order by e.n)
       select (select count(*) from state)::int as n`,
      [
        record.grantId, JSON.stringify(record), expiry === null ? null : new Date(expiry).toISOString(), fresh.map((c) => c.couponId),
        this.deps.journal.shardOfEvent(events[0]!), events.map((e) => e.data.eventId), events.map((e) => JSON.stringify(e)),
        ...(create ? [record.activityId, record.orderNo, record.userId, create.fingerprint] : []),
      ],
    );
    return { created: rows[0]!.n === 1 };
  }

  /** Template terms, read without a lock: a template in use keeps its platform and value (coupon-catalog.ts). */
  private async templatesOf(client: pg.PoolClient, templateIds: string[]): Promise<Map<string, TemplateRow>> {
    const { rows } = await client.query<TemplateRow>(
      'select template_id, platform, face_value, currency, valid_days from coupon_templates where template_id = any($1)', [templateIds],
    );
    return new Map(rows.map((r) => [r.template_id, r]));
  }

  private async packOf(client: pg.PoolClient, packId: string): Promise<GiftPack | null> {
    const { rows } = await client.query<{ name: string; slots: GiftPack['slots'] }>('select name, slots from gift_packs where pack_id=$1', [packId]);
    return rows[0] ? { packId, name: rows[0].name, slots: rows[0].slots } : null;
  }

  /**
   * C1: one unit of each template, or none (the caller rolls back). Each template's unit comes
   * from a bucket no other grant holds right now, so grants of one pack run side by side;
   * only when every bucket with stock left is held does a grant wait for one. A template is
   * out of stock when its buckets have nothing left.
   */
  private async takeStock(client: pg.PoolClient, templateIds: string[]): Promise<{ ok: true; levels: StockRow[] | null } | { ok: false; empty: string[] }> {
    const ids = [...new Set(templateIds)].sort();
    // The sums come from the statement's snapshot, which does not see this update: + 1 is this grant's unit.
    const { rows } = await client.query<StockRow>(
      `update coupon_stock s set taken = s.taken + 1
         from unnest($1::text[]) as t(id)
         cross join lateral (select bucket from coupon_stock b where b.template_id = t.id and b.taken < b.capacity
                              order by random() limit 1 for update skip locked) p
        where s.template_id = t.id and s.bucket = p.bucket
        returning s.template_id, (select sum(c.capacity) from coupon_stock c where c.template_id = s.template_id) as total_stock,
                  (select sum(c.taken) from coupon_stock c where c.template_id = s.template_id) + 1 as taken,
                  (select low_stock_percent from coupon_templates c where c.template_id = s.template_id)`,
      [ids],
    );
    const got = new Set(rows.map((r) => r.template_id));
    const empty: string[] = [];
    for (const id of ids.filter((x) => !got.has(x))) {
      for (;;) {
        const { rowCount } = await client.query(
          `update coupon_stock s set taken = s.taken + 1
            where (s.template_id, s.bucket) = (select template_id, bucket from coupon_stock where template_id = $1 and taken < capacity
                                                order by capacity - taken desc limit 1 for update)
              and s.taken < s.capacity`,
          [id],
        );
        if (rowCount === 1) break;
        const { rows: left } = await client.query<{ left: string }>('select coalesce(sum(capacity - taken), 0) as left from coupon_stock where template_id = $1', [id]);
        if (Number(left[0]!.left) === 0) {
          empty.push(id);
          break;
        }
      }
    }
    if (empty.length > 0) return { ok: false, empty };
    return { ok: true, levels: rows.length === ids.length ? rows.sort((a, b) => (a.template_id < b.template_id ? -1 : 1)) : null };
  }

  private levelOf(t: StockRow): StockLevel {
    return stockLevel(t.template_id, Number(t.total_stock), Number(t.taken), t.low_stock_percent ?? this.deps.lowStockPercent);
  }

  async stockOf(templateIds: string[]): Promise<StockLevel[]> {
    const { rows } = await this.deps.pool.query<StockRow>(
      `select t.template_id, t.total_stock, t.low_stock_percent, (select coalesce(sum(s.taken), 0) from coupon_stock s where s.template_id = t.template_id) as taken
         from coupon_templates t where t.template_id = any($1) order by t.template_id`, [[...new Set(templateIds)]],
    );
    return rows.map((t) => this.levelOf(t));
  }
}

/**
 * A pack's slots and their templates' terms for a platform, kept for a second: every grant
 * reads them, and they change only by an operator's put (a template in use keeps its
 * platform and value, coupon-catalog.ts), which grants see within TERMS_TTL_MS.
 */
const TERMS_TTL_MS = 1000;
class PackTerms {
  private readonly cache = new Map<string, { at: number; terms: Promise<{ slot: string; template: TemplateRow }[] | null> }>();

  constructor(private readonly pool: pg.Pool) {}

  get(packId: string, platform: Platform): Promise<{ slot: string; template: TemplateRow }[] | null> {
    const key = `${packId}/${platform}`;
    const hit = this.cache.get(key);
    if (hit && Date.now() - hit.at < TERMS_TTL_MS) return hit.terms;
    const terms = this.load(packId, platform);
    this.cache.set(key, { at: Date.now(), terms });
    terms.catch(() => this.cache.delete(key));
    return terms;
  }

  private async load(packId: string, platform: Platform) {
    const { rows } = await this.pool.query<TemplateRow & { slot: string }>(
      `select s.slot_json->>'slot' as slot, t.template_id, t.platform, t.face_value, t.currency, t.valid_days
         from gift_packs p, jsonb_array_elements(p.slots) with ordinality as s(slot_json, n)
         join coupon_templates t on t.template_id = s.slot_json->>$2
        where p.pack_id = $1 order by s.n`,
      [packId, platform],
    );
    return rows.length === 0 ? null : rows.map(({ slot, ...template }) => ({ slot, template }));
  }
}

/** Two grants each waiting for a bucket the other holds: Postgres aborts one, which starts again (nothing of it was kept). */
async function retryDeadlocks<T>(run: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await run();
    } catch (err) {
      if ((err as { code?: string }).code !== '40P01' || attempt >= 5) throw err;
    }
  }
}

function notFound(couponId: string): CommandResult {
  return { ok: false, status: 404, refusal: { code: 'COUPON_NOT_FOUND', message: `There is no coupon ${couponId} in this wallet.` } };
}

