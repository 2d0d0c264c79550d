import type pg from 'pg';
import { bucketCapacities, PLATFORMS, type CouponTemplate, type GiftPack } from '../domain/coupons.ts';

/**
 * Coupon templates and gift packs: configuration operators put through the admin API.
 * What a coupon is worth travels in its events, so a change here never rewrites an issued
 * coupon; that is also why a template in use keeps its platform and face value.
 */
export interface CatalogRefusal { status: number; code: string; message: string; details?: Record<string, unknown> }

export interface StoredTemplate extends CouponTemplate { taken: number; updatedAt: string; updatedBy: string }

const templateOf = (r: Record<string, any>): StoredTemplate => ({
  templateId: r.template_id, platform: r.platform, faceValue: Number(r.face_value), currency: r.currency, validDays: r.valid_days,
  totalStock: Number(r.total_stock), lowStockPercent: r.low_stock_percent, taken: Number(r.taken),
  updatedAt: new Date(r.updated_at).toISOString(), updatedBy: r.updated_by,
});

const TEMPLATE_COLUMNS = `t.*, (select coalesce(sum(s.taken), 0) from coupon_stock s where s.template_id = t.template_id) as taken`;

export class CouponCatalog {
  constructor(private readonly pool: pg.Pool, private readonly buckets: number) {}

  async putTemplate(t: CouponTemplate, by: string): Promise<{ template: StoredTemplate } | { refused: CatalogRefusal }> {
    const client = await this.pool.connect();
    try {
      await client.query('begin');
      const { rows } = await client.query(`select ${TEMPLATE_COLUMNS} from coupon_templates t where template_id=$1 for update`, [t.templateId]);
      const cur = rows[0] ? templateOf(rows[0]) : null;
      // Grants take stock from the buckets without touching the template row: lock them too.
      const { rows: buckets } = await client.query<{ bucket: number; taken: string }>(
        'select bucket, taken from coupon_stock where template_id=$1 order by bucket for update', [t.templateId],
      );
      if (cur && cur.taken > 0 && (cur.platform !== t.platform || cur.faceValue !== t.faceValue || cur.currency !== t.currency)) {
        await client.query('rollback');
        return { refused: { status: 409, code: 'TEMPLATE_IN_USE', message: `Template ${t.templateId} has issued ${cur.taken} coupons; its platform, face value and currency cannot change. Make a new template.` } };
      }
      if (cur && t.totalStock < cur.taken) {
        await client.query('rollback');
        return { refused: { status: 409, code: 'STOCK_BELOW_ISSUED', message: `Template ${t.templateId} has already issued ${cur.taken} coupons; the total stock cannot go below that.`, details: { taken: cur.taken } } };
      }
      await client.query(
        `insert into coupon_templates(template_id, platform, face_value, currency, valid_days, total_stock, low_stock_percent, updated_by)
         values ($1,$2,$3,$4,$5,$6,$7,$8)
         on conflict (template_id) do update set platform=excluded.platform, face_value=excluded.face_value, currency=excluded.currency,
           valid_days=excluded.valid_days, total_stock=excluded.total_stock, low_stock_percent=excluded.low_stock_percent,
           updated_by=excluded.updated_by, updated_at=now()`,
        [t.templateId, t.platform, t.faceValue, t.currency, t.validDays, t.totalStock, t.lowStockPercent, by],
      );
      const taken = buckets.length > 0 ? buckets.map((b) => Number(b.taken)) : Array.from({ length: this.buckets }, () => 0);
      const capacities = bucketCapacities(t.totalStock, taken)!; // total ≥ taken was checked above
      await client.query(
        `insert into coupon_stock(template_id, bucket, capacity) select $1, b, c from unnest($2::int[], $3::bigint[]) as q(b, c)
         on conflict (template_id, bucket) do update set capacity = excluded.capacity`,
        [t.templateId, taken.map((_, i) => buckets[i]?.bucket ?? i), capacities],
      );
      const { rows: saved } = await client.query(`select ${TEMPLATE_COLUMNS} from coupon_templates t where template_id=$1`, [t.templateId]);
      await client.query('commit');
      return { template: templateOf(saved[0]!) };
    } catch (err) {
      await client.query('rollback').catch(() => {});
      throw err;
    } finally {
      client.release();
    }
  }

  async template(templateId: string): Promise<StoredTemplate | null> {
    const { rows } = await this.pool.query(`select ${TEMPLATE_COLUMNS} from coupon_templates t where template_id=$1`, [templateId]);
    return rows[0] ? templateOf(rows[0]) : null;
  }

  /** A pack's slots must name existing templates of the right platform, and a slot's two templates the same benefit. */
  async putPack(p: GiftPack, by: string): Promise<{ pack: GiftPack } | { refused: CatalogRefusal }> {
    const ids = p.slots.flatMap((s) => PLATFORMS.map((pl) => s[pl]));
    const { rows } = await this.pool.query(`select ${TEMPLATE_COLUMNS} from coupon_templates t where template_id = any($1)`, [ids]);
    const known = new Map(rows.map((r) => [r.template_id as string, templateOf(r)]));
    const errors: { path: string; message: string }[] = [];
    const seen = new Set<string>();
    p.slots.forEach((s, i) => {
      if (seen.has(s.slot)) errors.push({ path: `/slots/${i}/slot`, message: `slot ${s.slot} appears twice` });
      seen.add(s.slot);
      for (const pl of PLATFORMS) {
        const t = known.get(s[pl]);
        if (!t) errors.push({ path: `/slots/${i}/${pl}`, message: `there is no coupon template ${s[pl]}` });
        else if (t.platform !== pl) errors.push({ path: `/slots/${i}/${pl}`, message: `template ${s[pl]} is for ${t.platform}, not ${pl}` });
      }
      const ios = known.get(s.ios);
      const android = known.get(s.android);
      if (ios && android && (ios.faceValue !== android.faceValue || ios.currency !== android.currency)) {
        errors.push({ path: `/slots/${i}`, message: `the iOS and Android templates of slot ${s.slot} differ in value (${ios.faceValue} ${ios.currency} and ${android.faceValue} ${android.currency})` });
      }
    });
    if (errors.length > 0) {
      return { refused: { status: 422, code: 'INVALID_PACK', message: `The gift pack is invalid: ${errors.map((e) => `${e.path} ${e.message}`).join('; ')}`, details: { errors } } };
    }
    await this.pool.query(
      `insert into gift_packs(pack_id, name, slots, updated_by) values ($1,$2,$3,$4)
       on conflict (pack_id) do update set name=excluded.name, slots=excluded.slots, updated_by=excluded.updated_by, updated_at=now()`,
      [p.packId, p.name, JSON.stringify(p.slots), by],
    );
    return { pack: p };
  }

  async knownPacks(ids: string[]): Promise<Set<string>> {
    const { rows } = await this.pool.query<{ pack_id: string }>('select pack_id from gift_packs where pack_id = any($1)', [ids]);
    return new Set(rows.map((r) => r.pack_id));
  }

  async pack(packId: string): Promise<GiftPack | null> {
    const { rows } = await this.pool.query('select name, slots from gift_packs where pack_id=$1', [packId]);
    return rows[0] ? { packId, name: rows[0].name, slots: rows[0].slots } : null;
  }
}
