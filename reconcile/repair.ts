import type pg from 'pg';
import type { LedgerEvent } from '../domain/events.ts';
import type { EventPublisher } from '../infra/publisher.ts';
import type { Currency } from '../domain/money.ts';
import { creditFor } from '../domain/grants.ts';
import { shareCreditFor } from '../domain/packets.ts';
import { duplicateFlagEventIdFor, failedEventIdFor, settledEventIdFor } from '../domain/withdrawals.ts';
import type { Difference } from './differences.ts';

/**
 * The compensation event for each repairable difference. Every one carries the id the
 * processors themselves would use (a credit's id is derived from its token, a settlement's
 * from its withdrawal, a flag's from the extra payment), so repair is idempotent by
 * construction: a second repair, or a processor catching up at the same time, produces the
 * same event, and the ledger applies it once. The fold then refuses what no longer applies
 * (a second resolution of a payout), so a stale repair cannot move money either.
 */
export function compensationsFor(diffs: readonly Difference[], now: number, runId: string): LedgerEvent[] {
  const out: LedgerEvent[] = [];
  const traceId = `reconcile:${runId}`;
  for (const d of diffs) {
    if (!d.repair || !d.userId || !d.repairData) continue;
    const money = { amount: d.repairData.amount, currency: d.repairData.currency as Currency };
    switch (d.repair) {
      case 'credit_token':
        if (!d.tokenId || !d.activityId) continue;
        out.push({ type: 'TokenCredited', data: creditFor({ tokenId: d.tokenId, activityId: d.activityId, traceId, userId: d.userId, ...money }, now) });
        break;
      case 'credit_share':
        if (!d.packetId) continue;
        out.push({ type: 'PacketShareCredited', data: shareCreditFor({ packetId: d.packetId, userId: d.userId, traceId, ...money }, now) });
        break;
      case 'settle_payout':
        if (!d.payoutId || !d.providerRef) continue;
        out.push({
          type: 'PayoutSettled',
          data: { eventId: settledEventIdFor(d.payoutId), occurredAt: now, activityId: '', traceId, withdrawalId: d.payoutId, userId: d.userId, ...money, providerRef: d.providerRef },
        });
        break;
      case 'return_payout':
        if (!d.payoutId) continue;
        out.push({
          type: 'PayoutFailed',
          data: { eventId: failedEventIdFor(d.payoutId), occurredAt: now, activityId: '', traceId, withdrawalId: d.payoutId, userId: d.userId, ...money, reason: d.repairData.reason ?? 'REJECTED' },
        });
        break;
      case 'flag_duplicate':
        if (!d.payoutId || !d.providerRef) continue;
        out.push({
          type: 'PayoutDuplicateFlagged',
          data: {
            eventId: duplicateFlagEventIdFor(d.payoutId, d.providerRef), occurredAt: now, activityId: '', traceId,
            withdrawalId: d.payoutId, userId: d.userId, ...money, providerRef: d.providerRef, flaggedBy: runId,
          },
        });
        break;
    }
  }
  // One difference can be reported twice (e.g. by two checks); one event each.
  const seen = new Set<string>();
  return out.filter((e) => !seen.has(e.data.eventId) && seen.add(e.data.eventId));
}

/**
 * Emits the compensations for an audit's repairable differences. Events already in the
 * ledger (an earlier repair, or a processor that caught up) are not produced again, so a
 * second repair produces nothing at all.
 */
export async function repair(
  deps: { pool: pg.Pool; publisher: EventPublisher }, diffs: readonly Difference[], runId: string, now = Date.now(),
): Promise<{ emitted: LedgerEvent[]; skipped: number }> {
  const events = compensationsFor(diffs, now, runId);
  if (events.length === 0) return { emitted: [], skipped: 0 };
  const { rows } = await deps.pool.query<{ event_id: string }>('select event_id::text from ledger_events where event_id = any($1::uuid[])', [events.map((e) => e.data.eventId)]);
  const present = new Set(rows.map((r) => r.event_id));
  const emitted = events.filter((e) => !present.has(e.data.eventId));
  await Promise.all(emitted.map((e) => deps.publisher.publish(e.type, e.data as never)));
  return { emitted, skipped: events.length - emitted.length };
}
