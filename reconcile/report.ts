import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type pg from 'pg';
import { toCsv, type Difference } from './differences.ts';
import type { AuditKind, AuditReport } from './audit.ts';

const fen = (n: number) => `${(n / 100).toFixed(2)}`;

/** The report as a person reads it: what was audited, what moved, and every difference by kind. */
export function summaryText(r: AuditReport, repairs?: { emitted: number; skipped: number }): string {
  const lines: string[] = [];
  lines.push(`Hongbao Ledger ${r.kind} ${r.runId}`);
  lines.push(`  range       ${r.range.from ?? 'beginning of the log'} → ${r.range.to}`);
  lines.push(`  events      ${r.events.toLocaleString('en')} read, ${r.duplicates} duplicate deliveries, ${r.undecodable} undecodable (dead-lettered)`);
  if (r.couponEventsBeforeGrant > 0) lines.push(`  coupons     ${r.couponEventsBeforeGrant} coupon events of packs granted before the range not folded (no money; a whole-log audit folds them)`);
  lines.push(`  compared    projection; ${r.checked.provider ? `${r.checked.providerPayments} provider payments` : 'provider NOT compared (no provider configured)'}; ${r.checked.tokens} tokens, ${r.checked.withdrawals} withdrawals; folded in ${r.checked.threads} thread(s)`);
  const flows = Object.entries(r.flows).sort(([a], [b]) => (a < b ? -1 : 1));
  if (flows.length) {
    lines.push('  money moved (count, amount in yuan):');
    for (const [type, f] of flows) lines.push(`    ${type.padEnd(24)} ${String(f.count).padStart(9)}  ${fen(f.amount).padStart(14)}`);
  }
  if (r.clean) {
    lines.push('  result      CLEAN: the log, the projection and the provider agree.');
  } else {
    lines.push(`  result      ${r.differences.length} DIFFERENCE(S):`);
    for (const [kind, n] of Object.entries(r.byKind)) lines.push(`    ${kind.padEnd(28)} ${n}`);
    lines.push('');
    for (const d of r.differences.slice(0, 50)) lines.push(`  - [${d.kind}] ${d.message}${d.repair ? ` (repair: ${d.repair})` : ''}`);
    if (r.differences.length > 50) lines.push(`  … and ${r.differences.length - 50} more in the CSV/JSON files`);
  }
  if (repairs) lines.push(`  repair      ${repairs.emitted} compensation event(s) emitted, ${repairs.skipped} already in the ledger`);
  return `${lines.join('\n')}\n`;
}

/** Writes the JSON and CSV files finance keeps; returns their paths. */
export function writeReportFiles(r: AuditReport, dir: string): { json: string; csv: string } {
  mkdirSync(dir, { recursive: true });
  const stamp = r.startedAt.replace(/[-:]/g, '').replace(/\..*$/, '');
  const base = join(dir, `${r.kind}-${stamp}-${r.runId.slice(0, 8)}`);
  writeFileSync(`${base}.json`, `${JSON.stringify(r, null, 2)}\n`);
  writeFileSync(`${base}.csv`, toCsv(r.differences));
  return { json: `${base}.json`, csv: `${base}.csv` };
}

/** Keeps a report in Postgres; an hourly report is kept once per hour, whoever writes it. Returns false if it already was. */
export async function saveReport(pool: pg.Pool, r: AuditReport): Promise<boolean> {
  const client = await pool.connect();
  try {
    await client.query('begin');
    const summary = { events: r.events, duplicates: r.duplicates, couponEventsBeforeGrant: r.couponEventsBeforeGrant, undecodable: r.undecodable, flows: r.flows, checked: r.checked, partitions: r.partitions };
    const ins = await client.query(
      `insert into reconcile_runs(run_id, kind, range_from, range_to, started_at, finished_at, events, differences, by_kind, summary)
       values ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10) on conflict do nothing returning run_id`,
      [r.runId, r.kind, r.range.from, r.range.to, r.startedAt, r.finishedAt, r.events, r.differences.length, JSON.stringify(r.byKind), JSON.stringify(summary)],
    );
    if (ins.rowCount === 0) {
      await client.query('rollback');
      return false;
    }
    if (r.differences.length > 0) {
      await client.query(
        `insert into reconcile_differences(run_id, seq, kind, detail) select $1, * from unnest($2::int[], $3::text[], $4::jsonb[])`,
        [r.runId, r.differences.map((_, i) => i), r.differences.map((d) => d.kind), r.differences.map((d) => JSON.stringify(d))],
      );
    }
    await client.query('commit');
    return true;
  } catch (err) {
    await client.query('rollback').catch(() => {});
    throw err;
  } finally {
    client.release();
  }
}

export interface StoredRun {
  runId: string;
  kind: AuditKind;
  rangeFrom: string | null;
  rangeTo: string;
  startedAt: string;
  finishedAt: string;
  events: number;
  differences: number;
  byKind: Record<string, number>;
}

const RUN_COLUMNS = `run_id as "runId", kind, range_from as "rangeFrom", range_to as "rangeTo", started_at as "startedAt",
  finished_at as "finishedAt", events, differences, by_kind as "byKind"`;

export async function listReports(pool: pg.Pool, kind: AuditKind | undefined, limit: number): Promise<StoredRun[]> {
  const { rows } = await pool.query(
    `select ${RUN_COLUMNS} from reconcile_runs where ($1::text is null or kind = $1) order by range_to desc limit $2`, [kind ?? null, limit],
  );
  return rows;
}

export async function getReport(pool: pg.Pool, runId: string): Promise<(StoredRun & { summary: unknown; differenceList: Difference[] }) | null> {
  const { rows } = await pool.query(`select ${RUN_COLUMNS}, summary from reconcile_runs where run_id = $1`, [runId]);
  if (!rows[0]) return null;
  const diffs = await pool.query<{ detail: Difference }>('select detail from reconcile_differences where run_id = $1 order by seq', [runId]);
  return { ...rows[0], differenceList: diffs.rows.map((d) => d.detail) };
}
