import type pg from 'pg';
import type { Consumption } from '../infra/draw-quotas.ts';

/** What the projection says a child activity has issued: per prize, and wins per user. */
export async function consumptionOf(pool: pg.Pool, activityId: string, childId: string): Promise<Consumption> {
  const [issued, wins] = await Promise.all([
    pool.query<{ prize_id: string; issued: number }>(
      'select prize_id, issued from prize_consumption where activity_id = $1 and child_id = $2', [activityId, childId]),
    pool.query<{ user_id: string; wins: number }>(
      'select user_id, count(*)::int as wins from draw_wins where activity_id = $1 and child_id = $2 group by user_id', [activityId, childId]),
  ]);
  return {
    issued: new Map(issued.rows.map((r) => [r.prize_id, Number(r.issued)])),
    wins: new Map(wins.rows.map((r) => [r.user_id, r.wins])),
  };
}
