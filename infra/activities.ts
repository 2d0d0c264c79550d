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
    const { rows } = await this.pool.query<{ activity_id: string; currency: string; max_single_grant: number }>(
      'select activity_id, currency, max_single_grant from activities where activity_id = $1', [activityId],
    );
    const row = rows[0];
    const terms = row && isCurrency(row.currency)
      ? { activityId: row.activity_id, currency: row.currency, maxSingleGrant: row.max_single_grant }
      : null;
    this.cache.set(activityId, { at: Date.now(), terms });
    return terms;
  }

  /** Creates or updates an activity's terms. */
  async put(activityId: string, name: string, currency: string, maxSingleGrant: number): Promise<void> {
    await this.pool.query(
      `insert into activities(activity_id, name, currency, max_single_grant) values ($1,$2,$3,$4)
       on conflict (activity_id) do update set name = excluded.name, max_single_grant = excluded.max_single_grant`,
      [activityId, name, currency, maxSingleGrant],
    );
    this.cache.delete(activityId);
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
