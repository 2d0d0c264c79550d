import type pg from 'pg';
import { compileCampaign, ledgerActivityOf, type Campaign, type CampaignConfig } from '../domain/campaigns.ts';

export interface ConfigVersion {
  activityId: string;
  version: number;
  createdAt: string;
  createdBy: string;
  note: string;
  rolledBackTo: number | null;
}

export class VersionConflict extends Error {
  constructor(readonly current: number) {
    super(`the configuration is at version ${current}`);
  }
}

/** A child's ledger activity already exists as a plain activity: its budget is not the campaign's to take over. */
export class ActivityTaken extends Error {
  constructor(readonly childIndex: number, readonly activityId: string) {
    super(`activity ${activityId} already exists and does not belong to a campaign`);
  }
}

/**
 * Campaign configuration history in Postgres. Every accepted put and every rollback is a new
 * version; the highest version is in force. Versions are written under a per-activity lock,
 * so two operators cannot both become version N + 1.
 */
export class CampaignStore {
  constructor(private readonly pool: pg.Pool) {}

  /** Stores a validated configuration as the next version. `expectedVersion` guards against a lost update. */
  async put(config: CampaignConfig, by: string, note: string, expectedVersion?: number, rolledBackTo?: number): Promise<number> {
    const client = await this.pool.connect();
    try {
      await client.query('begin');
      await client.query('select pg_advisory_xact_lock(hashtext($1))', [`campaign:${config.activityId}`]);
      const { rows } = await client.query<{ v: number | null }>('select max(version) as v from campaign_configs where activity_id = $1', [config.activityId]);
      const current = rows[0]?.v ?? 0;
      if (expectedVersion !== undefined && expectedVersion !== current) throw new VersionConflict(current);
      const version = current + 1;
      await client.query(
        'insert into campaign_configs(activity_id, version, config, created_by, note, rolled_back_to) values ($1,$2,$3,$4,$5,$6)',
        [config.activityId, version, JSON.stringify(config), by, note, rolledBackTo ?? null],
      );
      // Each child grants its cash from its own ledger activity (isolated budgets). Its terms
      // follow the configuration: the single-grant cap is the child's largest cash prize, and
      // each scene's statement text is what the wallet statement shows for its prizes.
      for (const [i, child] of config.children.entries()) {
        const largest = Math.max(1, ...child.scenes.flatMap((s) => s.pool.prizes.map((p) => p.amount ?? 0)));
        // The activity is the campaign's (its draws alone spend it): created as such, never adopted.
        const owned = await client.query(
          `insert into activities(activity_id, name, currency, max_single_grant, campaign_id) values ($1,$2,$3,$4,$5)
           on conflict (activity_id) do update set name = excluded.name, max_single_grant = excluded.max_single_grant
           where activities.campaign_id = excluded.campaign_id`,
          [ledgerActivityOf(config.activityId, child.childId), `${config.name} / ${child.childId}`, config.currency, largest, config.activityId],
        );
        if (owned.rowCount !== 1) throw new ActivityTaken(i, ledgerActivityOf(config.activityId, child.childId));
        // What the wallet statement shows for a prize from each scene.
        for (const scene of child.scenes) {
          await client.query(
            `insert into scenes(activity_id, scene_id, statement_text) values ($1,$2,$3)
             on conflict (activity_id, scene_id) do update set statement_text = excluded.statement_text`,
            [ledgerActivityOf(config.activityId, child.childId), scene.sceneId, scene.statementText],
          );
        }
      }
      await client.query('commit');
      return version;
    } catch (err) {
      await client.query('rollback').catch(() => {});
      throw err;
    } finally {
      client.release();
    }
  }

  async get(activityId: string, version?: number): Promise<{ version: number; config: CampaignConfig } | null> {
    const { rows } = await this.pool.query<{ version: number; config: CampaignConfig }>(
      version === undefined
        ? 'select version, config from campaign_configs where activity_id = $1 order by version desc limit 1'
        : 'select version, config from campaign_configs where activity_id = $1 and version = $2',
      version === undefined ? [activityId] : [activityId, version],
    );
    return rows[0] ?? null;
  }

  async versions(activityId: string): Promise<ConfigVersion[]> {
    const { rows } = await this.pool.query(
      `select activity_id, version, created_at, created_by, note, rolled_back_to from campaign_configs
        where activity_id = $1 order by version desc`, [activityId]);
    return rows.map((r) => ({
      activityId: r.activity_id, version: r.version, createdAt: (r.created_at as Date).toISOString(), createdBy: r.created_by, note: r.note,
      rolledBackTo: r.rolled_back_to,
    }));
  }

  /** The version in force of every activity. */
  async currentVersions(): Promise<Map<string, number>> {
    const { rows } = await this.pool.query<{ activity_id: string; v: number }>('select activity_id, max(version) as v from campaign_configs group by activity_id');
    return new Map(rows.map((r) => [r.activity_id, r.v]));
  }
}

/**
 * The configurations in force, held in memory for the draw path and refreshed by polling
 * Postgres: every instance applies a change within one poll interval plus a query, without
 * a restart (QQ applied theirs within 10 s). A failed poll keeps the configurations it has.
 */
export class CampaignCatalog {
  private readonly campaigns = new Map<string, Campaign>();
  private timer: NodeJS.Timeout | null = null;
  private loading: Promise<void> | null = null;

  constructor(private readonly store: CampaignStore, private readonly pollMs: number, private readonly onError: (err: unknown) => void = () => {}) {}

  get(activityId: string): Campaign | undefined {
    return this.campaigns.get(activityId);
  }

  /** Loads what changed since the last refresh. Concurrent callers share one load. */
  refresh(): Promise<void> {
    this.loading ??= this.load().finally(() => {
      this.loading = null;
    });
    return this.loading;
  }

  private async load(): Promise<void> {
    const current = await this.store.currentVersions();
    for (const [activityId, version] of current) {
      if (this.campaigns.get(activityId)?.version === version) continue;
      const stored = await this.store.get(activityId, version);
      if (!stored) continue;
      try {
        this.campaigns.set(activityId, compileCampaign(stored.config, stored.version));
      } catch (err) {
        // A version stored under older, looser rules that today's cannot read (a leap second):
        // it keeps the version it had, and the other campaigns still load.
        this.onError(err);
      }
    }
  }

  async start(): Promise<void> {
    await this.refresh();
    const tick = () => {
      this.timer = setTimeout(() => {
        this.refresh().catch(this.onError).finally(() => {
          if (this.timer) tick();
        });
      }, this.pollMs);
      this.timer.unref();
    };
    tick();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
