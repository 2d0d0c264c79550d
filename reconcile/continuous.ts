import type pg from 'pg';
import type { Logger } from '../infra/log.ts';
import { runAudit, type AuditDeps, type AuditReport } from './audit.ts';
import { saveReport } from './report.ts';

export interface ReconcilerOptions {
  /** How often a new window of the log is checked. */
  intervalMs: number;
  /** How far behind now a window ends: work younger than this is still in flight. */
  behindMs: number;
  /** The period of the persisted report (an hour in production). */
  reportPeriodMs: number;
  creditGraceMs: number;
  payoutGraceMs: number;
}

/**
 * Near-real-time reconciliation. Every interval it audits the window of the log between the
 * end of its last window and `behindMs` ago (a range audit: broker append times make windows
 * exact, so consecutive windows cover the log once), and after each completed period it
 * audits the whole period again as the hourly report. Reports are kept in Postgres.
 *
 * Several instances may run: the one holding a Postgres advisory lock does the work, the
 * others wait to take over. Hourly reports are unique per period in the table as well.
 */
export class ContinuousReconciler {
  private timer: NodeJS.Timeout | null = null;
  private lockClient: pg.PoolClient | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;
  leader = false;
  lastError: string | null = null;

  constructor(
    private readonly deps: AuditDeps,
    private readonly log: Logger,
    private readonly namespace: string,
    private readonly opts: ReconcilerOptions,
  ) {}

  start(): void {
    const loop = async () => {
      if (this.stopped) return;
      this.running = this.tick().then(() => {}, (err) => {
        this.lastError = (err as Error).message;
        this.log.error('reconciliation window failed; retrying next interval', { err });
      });
      await this.running;
      this.running = null;
      if (!this.stopped) this.timer = setTimeout(loop, this.opts.intervalMs);
    };
    void loop();
  }

  private async lead(): Promise<boolean> {
    if (this.leader) return true;
    const client = await this.deps.pool.connect();
    let ok: boolean;
    try {
      ({ ok } = (await client.query<{ ok: boolean }>('select pg_try_advisory_lock(hashtext($1)) as ok', [`reconciler:${this.namespace}`])).rows[0]!);
    } catch (err) {
      // Given back broken, or the pool (a few connections) would run dry after a few such failures and the next tick wait for ever.
      client.release(err as Error);
      throw err;
    }
    if (!ok) {
      client.release();
      return false;
    }
    // The lock lives as long as this session: if the process dies, another instance takes over.
    client.on('error', (err) => {
      // The session (and so the lock) is gone: let go of the connection and try to lead again next interval.
      this.leader = false;
      this.lockClient = null;
      client.release(err);
      this.log.warn('lost the reconciliation lock', { err });
    });
    this.lockClient = client;
    this.leader = true;
    this.log.info('this instance now runs reconciliation');
    return true;
  }

  /** One step: the next continuous window, then any missing periodic report. */
  async tick(now = Date.now()): Promise<AuditReport[]> {
    if (!(await this.lead())) return [];
    const horizon = now - this.opts.behindMs;
    const done: AuditReport[] = [];
    const { rows } = await this.deps.pool.query<{ to: Date | null }>(`select max(range_to) as to from reconcile_runs where kind = 'continuous'`);
    const from = rows[0]!.to?.getTime() ?? horizon - this.opts.intervalMs;
    if (horizon > from) done.push(await this.audit('continuous', from, horizon));

    const period = this.opts.reportPeriodMs;
    const periodEnd = Math.floor(horizon / period) * period;
    const { rows: have } = await this.deps.pool.query(`select 1 from reconcile_runs where kind = 'hourly' and range_from = $1`, [new Date(periodEnd - period)]);
    if (have.length === 0) done.push(await this.audit('hourly', periodEnd - period, periodEnd));
    this.lastError = null;
    return done;
  }

  private async audit(kind: 'continuous' | 'hourly', from: number, to: number): Promise<AuditReport> {
    const report = await runAudit(this.deps, {
      kind, from: new Date(from), to: new Date(to), creditGraceMs: this.opts.creditGraceMs, payoutGraceMs: this.opts.payoutGraceMs,
    });
    await saveReport(this.deps.pool, report);
    const fields = { runId: report.runId, from: report.range.from, to: report.range.to, events: report.events, differences: report.differences.length, byKind: report.byKind };
    if (report.clean) this.log.info(`${kind} reconciliation clean`, fields);
    else this.log.warn(`${kind} reconciliation found differences`, fields);
    return report;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
    if (this.lockClient) {
      await this.lockClient.query('select pg_advisory_unlock(hashtext($1))', [`reconciler:${this.namespace}`]).catch(() => {});
      this.lockClient.release();
      this.lockClient = null;
    }
    this.leader = false;
  }
}
