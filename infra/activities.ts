import type pg from 'pg';
import type { ActivityTerms } from '../domain/grants.ts';
import { isCurrency } from '../domain/money.ts';

/**
 * Activity terms as the API needs them, read from Postgres and cached briefly so a change
 * reaches every instance within the TTL without a restart.
 */
export class ActivityCatalog {
  private cache = new Map<string, { at: number; terms: ActivityTerms | null }>();

  constructor(private readonly pool: pg.Pool, private readonly ttlMs = 5_000) {}

  async get(activityId: string): Promise<ActivityTerms | null> {
    const hit = this.cache.get(activityId);
    if (hit && Date.now() - hit.at < this.ttlMs) return hit.terms;
    const { rows } = await this.pool.query<{ activity_id: string; currency: string; max_single_grant: number; campaign_id: string | null }>(
      'select activity_id, currency, max_single_grant, campaign_id from activities where activity_id = $1', [activityId],
    );
    const row = rows[0];
    const terms = row && isCurrency(row.currency)
      ? { activityId: row.activity_id, currency: row.currency, maxSingleGrant: row.max_single_grant, campaignId: row.campaign_id }
      : null;
    this.cache.set(activityId, { at: Date.now(), terms });
    return terms;
  }

  /**
   * Creates or updates a plain activity's terms. A campaign child's terms follow its campaign's
   * configuration: it is left alone, and the campaign that owns it is returned.
   */
  async put(activityId: string, name: string, currency: string, maxSingleGrant: number): Promise<{ ownedBy: string } | null> {
    const { rowCount } = await this.pool.query(
      `insert into activities(activity_id, name, currency, max_single_grant) values ($1,$2,$3,$4)
       on conflict (activity_id) do update set name = excluded.name, max_single_grant = excluded.max_single_grant
       where activities.campaign_id is null`,
      [activityId, name, currency, maxSingleGrant],
    );
    this.cache.delete(activityId);
    if (rowCount === 1) return null;
    const { rows } = await this.pool.query<{ campaign_id: string }>('select campaign_id from activities where activity_id = $1', [activityId]);
    return { ownedBy: rows[0]?.campaign_id ?? '' };
  }

  /** Sets the text a user's statement shows for rewards from a scene. */
  async putScene(activityId: string, sceneId: string, statementText: string): Promise<boolean> {
    const { rowCount } = await this.pool.query(
      `insert into scenes(activity_id, scene_id, statement_text)
       select $1, $2, $3 where exists (select 1 from activities where activity_id = $1)
       on conflict (activity_id, scene_id) do update set statement_text = excluded.statement_text`,
      [activityId, sceneId, statementText],
    );
    return rowCount === 1;
  }
}
