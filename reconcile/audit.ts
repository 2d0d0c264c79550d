import { isCouponEvent } from '../domain/coupons.ts';
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import type { Kafka } from 'kafkajs';
import { Worker } from 'node:worker_threads';
import { MemoryLedger, checkSlices, negativeBalances, type BudgetSlices, type TokenRecord } from '../domain/ledger.ts';
import type { Currency } from '../domain/money.ts';
import { account, isActivityBudget, parseAccount } from '../domain/accounts.ts';
import { WITHDRAWAL_COLUMNS, withdrawalFromRow } from '../projections/ledger-store.ts';
import type { WithdrawalRecord } from '../domain/withdrawals.ts';
import { duplicateFlagEventIdFor } from '../domain/withdrawals.ts';
import { claimEventIdFor, shareCreditEventIdFor, unclaimedOf } from '../domain/packets.ts';
import type { EventCodec } from '../schemas/codec.ts';
import type { Config, Topics } from '../infra/config.ts';
import { countByKind, type Difference } from './differences.ts';
import { matchPayouts, type ProviderPayment } from './payout-match.ts';
import { ProjectionCheck, type Chunk, type FoldedEvent } from './projection-check.ts';
import { WholeLogCheck } from './whole-log-check.ts';
import { idBucket } from './digest.ts';
import {
  FoldMerge, addFunding, addSlice, anomalyDifference, countFlow, foldRanges, mergeFolds, splitRanges, type FoldOutcome, type FoldView, type Flow, type MergedFold,
} from './log-fold.ts';
import { OpeningState } from './opening-state.ts';
import { positionKey, replayCodec, replayRanges, resolveRanges, type PartitionRange } from './replay.ts';
import type { ProviderStatement } from './provider-statement.ts';

export type AuditKind = 'audit' | 'continuous' | 'hourly';

export interface AuditDeps {
  kafka: Kafka;
  /** The schema registry the audit decodes the log with (replayCodec). */
  registryUrl: string;
  pool: pg.Pool;
  topics: Topics;
  /** The projector whose positions (consumer_offsets) the audit waits for. */
  projector: string;
  /** The provider's books; without it the provider comparison is skipped (and the report says so). */
  provider: ProviderStatement | null;
  /**
   * A whole-log audit folds the log's partitions in this many worker threads, each with its
   * own clients made from `cfg`; without it, in this thread.
   */
  workers?: { count: number; cfg: Config };
}

export interface AuditOptions {
  kind?: AuditKind;
  /** Broker append time; without `from` the audit starts at the beginning of the log. */
  from?: Date;
  /** Without `to` (or with a `to` in the future) the audit ends at the log's end now. */
  to?: Date;
  /** How long a token may stay uncredited, and a payout unanswered, before it is a difference. */
  creditGraceMs?: number;
  payoutGraceMs?: number;
  /** How long to wait for the projection to reach the end of the range. */
  projectionWaitMs?: number;
  chunkSize?: number;
  onProgress?(done: number, total: number): void;
}

/** The audit itself could not be completed (exit code 2), as opposed to finding differences. */
export class AuditFailure extends Error {
  override readonly name = 'AuditFailure';
}

export type { Flow } from './log-fold.ts';

export interface AuditReport {
  runId: string;
  kind: AuditKind;
  startedAt: string;
  finishedAt: string;
  range: { from: string | null; to: string };
  partitions: PartitionRange[];
  events: number;
  undecodable: number;
  duplicates: number;
  /**
   * Range audits: coupon events of packs granted before the range, not folded. A pack's state
   * cannot be rewound to the range's start from the projection; coupons move no money, and
   * a whole-log audit folds them all.
   */
  couponEventsBeforeGrant: number;
  /** Money moved in the range by event type (minor units; one currency per ledger today). */
  flows: Record<string, Flow>;
  /** `threads`: how many threads folded the log's partitions (1 for a range audit, or when a whole log was folded in one piece). */
  checked: { projection: boolean; provider: boolean; providerPayments: number; tokens: number; withdrawals: number; threads: number };
  clean: boolean;
  byKind: Record<string, number>;
  differences: Difference[];
}

const MIN = 60_000;

/** The fold of the audited events, and the differences found while folding and comparing it. */
interface Folded {
  view: FoldView;
  /** Tokens the overdue check looks at (all of the range, or a whole log's pending ones). */
  tokens: TokenRecord[];
  tokenCount: number;
  /** Every token of the fold, for naming the grants of an over-issue (read again if need be). */
  allTokens(): Promise<TokenRecord[]>;
  events: number;
  undecodable: number;
  duplicates: number;
  couponEventsBeforeGrant: number;
  flows: Record<string, Flow>;
  differences: Difference[];
  threads: number;
  /** I10: per activity, the budget slices of the tokens accepted in the fold, and the fundings it applied. */
  slices: Map<string, BudgetSlices>;
  funded: Map<string, number>;
}

/** What the audit's folds read the log with. */
interface Replay extends AuditDeps {
  codec: EventCodec;
}

export async function runAudit(auditDeps: AuditDeps, opts: AuditOptions = {}): Promise<AuditReport> {
  const deps: Replay = { ...auditDeps, codec: replayCodec(auditDeps.registryUrl) };
  const startedAt = Date.now();
  const runId = randomUUID();
  const to = opts.to && opts.to.getTime() < startedAt ? opts.to : undefined;
  const coveredTo = to ?? new Date(startedAt);
  const rangeMode = opts.from !== undefined;

  // A whole-log audit folds one share of the partitions in this thread and the others in
  // worker threads, which load while the audit finds its ranges and starts folding its own.
  const workers = !rangeMode && deps.workers && deps.workers.count > 1
    ? Array.from({ length: deps.workers.count - 1 }, () => new FoldWorker(deps.workers!.cfg))
    : [];
  let fold: Folded;
  let ranges: PartitionRange[];
  let check: ProjectionCheck;
  // A whole-log audit reads the provider's whole statement, and reads it while the log is folded.
  const statement = deps.provider && !rangeMode ? deps.provider.payments({}) : null;
  statement?.catch(() => {}); // surfaces where it is awaited
  try {
    ranges = await resolveRanges(deps.kafka, [deps.topics.budget, deps.topics.wallet], { from: opts.from, to });
    await waitForProjection(deps.pool, deps.projector, ranges, opts.projectionWaitMs ?? 60_000);
    check = new ProjectionCheck(deps.pool, ranges);
    const total = ranges.reduce((n, r) => n + (r.end - r.start), 0);
    fold = rangeMode ? await foldRange(deps, ranges, check, opts, total) : await foldWholeLog(deps, ranges, check, opts, total, workers);
    opts.onProgress?.(total, total);
  } finally {
    for (const w of workers) w.terminate();
  }
  const { view, differences } = fold;

  differences.push(...(await overIssues(view.balances, fold.allTokens, rangeMode ? check : null)));
  differences.push(...(await sliceDifferences(fold.slices, fold.funded, fold.allTokens, rangeMode ? check : null)));
  // Overdue work is judged at the time of the audit, not at the end of the range, and only
  // if the projection still shows it open: a credit or payout that arrived after the range
  // was late, not missing. So a window audited `grace` after it ended reports every token
  // of the window that is overdue, once.
  const overdue = neverCredited(fold.tokens, startedAt - (opts.creditGraceMs ?? 10 * MIN));
  const stillPending = await check.stillOpen('tokens', overdue.map((d) => d.tokenId!));
  differences.push(...overdue.filter((d) => stillPending.has(d.tokenId!)));

  differences.push(...(await packetDifferences(view, check, startedAt, opts.creditGraceMs ?? 10 * MIN)));

  let providerPayments = 0;
  const withdrawals = [...view.withdrawals.values()];
  if (deps.provider) {
    const ledger = new Map(view.withdrawals);
    // A whole-log audit reads the whole statement; a payment made after the audit began, for
    // a withdrawal appended after its end, belongs to the next audit.
    const payments = (statement ? await statement : await providerPaymentsInScope(deps.provider, withdrawals, { from: opts.from, to: coveredTo }))
      .filter((p) => rangeMode || p.createdAt < startedAt || ledger.has(p.payoutId));
    providerPayments = payments.length;
    if (rangeMode) {
      for (const w of await withdrawalsAtEnd(deps.pool, check, payments.map((p) => p.payoutId).filter((id) => !ledger.has(id)))) ledger.set(w.withdrawalId, w);
    }
    // Flags raised before a range are in the projection; a whole log's are all in the fold.
    const projectedFlags = rangeMode ? await check.positions(payments.map((p) => duplicateFlagEventIdFor(p.payoutId, p.providerRef))) : new Map();
    const found = matchPayouts({
      withdrawals: ledger, payments,
      flagged: (w, ref) => { const id = duplicateFlagEventIdFor(w, ref); return view.applied.has(id) || projectedFlags.has(id); },
      referenceTime: startedAt, graceMs: opts.payoutGraceMs ?? 10 * MIN,
    });
    const inFlight = (d: Difference) => d.kind === 'payout_unresolved' || d.kind === 'payout_overdue';
    const stillWithdrawing = await check.stillOpen('withdrawals', found.filter(inFlight).map((d) => d.payoutId!));
    differences.push(...found.filter((d) => !inFlight(d) || stillWithdrawing.has(d.payoutId!)));
  }

  differences.sort((a, b) => (a.kind < b.kind ? -1 : a.kind > b.kind ? 1 : 0));
  return {
    runId, kind: opts.kind ?? 'audit', startedAt: new Date(startedAt).toISOString(), finishedAt: new Date().toISOString(),
    range: { from: opts.from?.toISOString() ?? null, to: coveredTo.toISOString() },
    partitions: ranges, events: fold.events, undecodable: fold.undecodable, duplicates: fold.duplicates, couponEventsBeforeGrant: fold.couponEventsBeforeGrant,
    flows: fold.flows,
    checked: { projection: true, provider: deps.provider !== null, providerPayments, tokens: fold.tokenCount, withdrawals: withdrawals.length, threads: fold.threads },
    clean: differences.length === 0, byKind: countByKind(differences), differences,
  };
}

/**
 * A range audit: the fold starts from the state before the range (read from the projection
 * as the events need it), and compares its own events with the projection chunk by chunk.
 */
async function foldRange(deps: Replay, ranges: readonly PartitionRange[], check: ProjectionCheck, opts: AuditOptions, total: number): Promise<Folded> {
  const chunkSize = opts.chunkSize ?? 5000;
  const mem = new MemoryLedger();
  const opening = new OpeningState(deps.pool, ranges, check);
  const differences: Difference[] = [];
  const flows: Record<string, Flow> = {};
  const slices = new Map<string, BudgetSlices>();
  const funded = new Map<string, number>();
  let done = 0;
  let duplicates = 0;
  let couponEventsBeforeGrant = 0;

  // Chunk checks run while the next batches are read; at most two are in flight.
  const inFlight: Promise<void>[] = [];
  let chunk: Chunk = { events: [], tokens: [], withdrawals: [] };
  const dispatch = async () => {
    if (chunk.events.length === 0 && chunk.tokens.length === 0) return;
    const c = chunk;
    chunk = { events: [], tokens: [], withdrawals: [] };
    const p = check.chunk(c).then((d) => void differences.push(...d));
    inFlight.push(p);
    p.finally(() => inFlight.splice(inFlight.indexOf(p), 1)).catch(() => {});
    if (inFlight.length >= 2) await inFlight[0];
  };

  const read = await replayRanges(deps.kafka, deps.codec, ranges, async (batch) => {
    await opening.seed(mem, batch);
    for (const event of batch) {
      if (isCouponEvent(event) && event.type !== 'GiftPackGranted' && !mem.pack(event.data.grantId)) {
        couponEventsBeforeGrant++;
        continue;
      }
      const fx = mem.apply(event);
      if (!fx) {
        duplicates++;
        continue;
      }
      if (fx.postings.length > 0) {
        countFlow(flows, event);
        addFunding(funded, event);
      }
      chunk.events.push({ event, postings: fx.postings });
      if (event.type === 'TokenIssued') {
        chunk.tokens.push(...fx.tokens);
        // The range's own tokens (the fold also holds earlier ones, seeded for their credits).
        for (const tk of fx.tokens) addSlice(slices, tk);
      }
      if (event.type === 'WithdrawalRequested') chunk.withdrawals.push(...fx.withdrawals);
      for (const a of fx.anomalies) differences.push(anomalyDifference(a, event));
    }
    done += batch.length;
    opts.onProgress?.(done, total);
    if (chunk.events.length >= chunkSize) await dispatch();
  });
  await dispatch();
  await Promise.all(inFlight);

  // Records at the end of the range, and the range's postings.
  const tokens = [...mem.tokens.values()];
  const withdrawals = [...mem.withdrawals.values()];
  for (let i = 0; i < Math.max(tokens.length, withdrawals.length); i += chunkSize) {
    differences.push(...(await check.states(tokens.slice(i, i + chunkSize), withdrawals.slice(i, i + chunkSize))));
  }
  differences.push(...(await check.imbalances()));
  return {
    view: mem, tokens, tokenCount: tokens.length, allTokens: async () => tokens,
    events: read.events, undecodable: read.undecodable, duplicates, couponEventsBeforeGrant, flows, differences, threads: 1, slices, funded,
  };
}

/**
 * A whole-log audit: the partitions are folded in `deps.workers` threads at once (log-fold.ts)
 * while Postgres digests the projection's tables, and the digests are compared
 * (whole-log-check.ts). A fold whose parts disagree with one fold of the whole (an event id
 * in two parts, or any event the rules refused, which may have needed another part's state)
 * is done again in one piece, so the report is always that of one fold of the log.
 */
async function foldWholeLog(
  deps: Replay, ranges: readonly PartitionRange[], check: ProjectionCheck, opts: AuditOptions, total: number, workers: FoldWorker[],
): Promise<Folded> {
  const whole = new WholeLogCheck(deps.pool, check);
  // The snapshot's transaction ends with the comparison, or here if the fold fails.
  try {
    let done = 0;
    const progress = (n: number) => {
      done += n;
      opts.onProgress?.(Math.min(done, total), total);
    };
    const [own, ...others] = splitRanges(ranges, workers.length + 1);
    let merged: MergedFold | null = null;
    if (others.length > 0) {
      const merge = new FoldMerge();
      const parts = [foldRanges(deps.kafka, deps.codec, own!, progress), ...others.map((part, i) => workers[i]!.fold(part, progress))];
      await Promise.all(parts.map((p) => p.then((outcome) => merge.add(outcome))));
      merged = merge.result();
    }
    if (merged && merged.differences.length > 0) merged = null;
    const threads = merged ? others.length + 1 : 1;
    if (!merged) {
      done = 0;
      merged = mergeFolds([await foldRanges(deps.kafka, deps.codec, ranges, progress)])!;
    }
    const fold = merged;
    let everyToken: Promise<TokenRecord[]> | null = null;
    const allTokens = () => (everyToken ??= refoldLedger(deps, ranges).then((mem) => [...mem.tokens.values()]));
    const differences = [...fold.differences, ...(await whole.finish(fold, allTokens, (buckets) => refold(deps, ranges, buckets)))];
    return {
      view: fold, tokens: fold.pendingTokens, tokenCount: fold.tokenCount, allTokens,
      events: fold.events, undecodable: fold.undecodable, duplicates: fold.duplicates, couponEventsBeforeGrant: 0, flows: fold.flows, differences, threads,
      slices: fold.slices, funded: fold.funded,
    };
  } finally {
    await whole.close();
  }
}

/** A worker thread that folds some partitions (fold-worker.ts). */
class FoldWorker {
  private readonly worker: Worker;
  private readonly failed: Promise<never>;

  constructor(cfg: Config) {
    this.worker = new Worker(new URL('./fold-worker.mjs', import.meta.url), {
      workerData: { cfg, clientId: `${cfg.namespace}-audit-fold` },
      // As the audit command's own heap (node-flags.ts): a young generation of three 64 MiB semi-spaces.
      resourceLimits: { maxYoungGenerationSizeMb: 192 },
    });
    this.failed = new Promise((_, reject) => {
      this.worker.on('error', reject);
      this.worker.on('exit', (code) => reject(new AuditFailure(`a fold worker exited (code ${code}) before it finished`)));
    });
    this.failed.catch(() => {}); // surfaces in fold()
  }

  fold(ranges: PartitionRange[], onProgress: (n: number) => void): Promise<FoldOutcome> {
    const outcome = new Promise<FoldOutcome>((resolve) => {
      this.worker.on('message', (m: { progress?: number; outcome?: FoldOutcome }) => {
        if (m.progress) onProgress(m.progress);
        if (m.outcome) resolve(m.outcome);
      });
    });
    this.worker.postMessage({ ranges });
    return Promise.race([outcome, this.failed]);
  }

  terminate(): void {
    void this.worker.terminate();
  }
}

/** The whole log folded again in one piece (only to name what a digest found). */
async function refoldLedger(deps: Replay, ranges: readonly PartitionRange[]): Promise<MemoryLedger> {
  const mem = new MemoryLedger();
  await replayRanges(deps.kafka, deps.codec, ranges, (batch) => void batch.forEach((event) => mem.apply(event)));
  return mem;
}

/** Reads the log again and returns the folded events whose ids fall in the given buckets (to name what a digest found). */
async function refold(deps: Replay, ranges: readonly PartitionRange[], buckets: Set<number>): Promise<FoldedEvent[]> {
  const mem = new MemoryLedger();
  const out: FoldedEvent[] = [];
  await replayRanges(deps.kafka, deps.codec, ranges, (batch) => {
    for (const event of batch) {
      const fx = mem.apply(event);
      if (fx && buckets.has(idBucket(event.data.eventId))) out.push({ event, postings: fx.postings });
    }
  });
  return out;
}

/** The audit compares the log with the projection up to the range's end, so the projection must have got there. */
async function waitForProjection(pool: pg.Pool, projector: string, ranges: readonly PartitionRange[], waitMs: number): Promise<void> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const { rows } = await pool.query<{ topic: string; partition: number; next_offset: number }>(
      'select topic, partition, next_offset from consumer_offsets where consumer = $1', [projector],
    );
    const at = new Map(rows.map((r) => [positionKey(r.topic, r.partition), r.next_offset]));
    const behind = ranges.reduce((n, r) => n + Math.max(0, r.end - (at.get(positionKey(r.topic, r.partition)) ?? 0)), 0);
    if (behind === 0) return;
    if (Date.now() > deadline) {
      throw new AuditFailure(`the projection (${projector}) is ${behind} events short of the audited range after ${waitMs} ms; is the projector running?`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** An activity budget below zero at the end of the range: more was issued than funded. */
async function overIssues(
  balances: FoldView['balances'], allTokens: () => Promise<TokenRecord[]>, rangeCheck: ProjectionCheck | null,
): Promise<Difference[]> {
  const budgets = [...balances.keys()].filter(isActivityBudget);
  const opening = rangeCheck ? await rangeCheck.sumsBefore(budgets) : new Map<string, number>();
  const out: Difference[] = [];
  // I2, the ledger's own rule for which accounts may not go negative.
  const closing = budgets.map((acct): [string, Currency, number] => [acct, balances.get(acct)!.currency, (opening.get(acct) ?? 0) + balances.get(acct)!.balance]);
  for (const { account: acct, balance } of negativeBalances(closing)) {
    const activityId = parseAccount(acct).ownerId!;
    // Name the latest grants that together make up the excess (on equal times, the later in the log).
    const grants = [...(await allTokens())].reverse().filter((t) => t.activityId === activityId).sort((a, b) => b.issuedAt - a.issuedAt);
    const involved: string[] = [];
    for (let excess = -balance, i = 0; excess > 0 && i < grants.length; i++) {
      involved.push(grants[i]!.tokenId);
      excess -= grants[i]!.amount;
    }
    out.push({
      kind: 'budget_over_issue', activityId, account: acct, currency: balances.get(acct)!.currency, expected: '>= 0', actual: balance,
      events: involved, repair: null,
      message: `activity ${activityId} issued ${-balance} more than it was funded; the latest grants making up the excess are listed`,
    });
  }
  return out;
}

/**
 * I10 at the log's level, the loop the fold's per-token check leaves open (a token's recorded
 * funding is its own claim): per activity, the slices of the accepted tokens must be disjoint
 * and end within the activity's BudgetFunded events on the log (a range audit adds those the
 * projection has from before the range, and sees only the range's own tokens). Then what the
 * activity's tokens moved is at most what it was funded, proved from the log alone.
 */
async function sliceDifferences(
  slices: ReadonlyMap<string, BudgetSlices>, funded: ReadonlyMap<string, number>, allTokens: () => Promise<TokenRecord[]>, rangeCheck: ProjectionCheck | null,
): Promise<Difference[]> {
  const findings = [...slices].map(([activityId, s]) => ({ activityId, ...checkSlices(s) }));
  const beyond = findings.filter((f) => f.highestEnd > (funded.get(f.activityId) ?? 0));
  const before = rangeCheck && beyond.length > 0 ? await rangeCheck.fundedBefore(beyond.map((f) => f.activityId)) : new Map<string, number>();
  const fundedOf = (activityId: string) => (before.get(activityId) ?? 0) + (funded.get(activityId) ?? 0);
  const wrong = findings.filter((f) => f.overlaps > 0 || f.highestEnd > fundedOf(f.activityId));
  if (wrong.length === 0) return [];
  // Name the tokens (read again if need be: a whole log's fold keeps only the numbers).
  const byActivity = new Map<string, TokenRecord[]>(wrong.map((f) => [f.activityId, []]));
  for (const t of await allTokens()) if (t.budgetSliceEnd !== null) byActivity.get(t.activityId)?.push(t);
  const out: Difference[] = [];
  for (const f of wrong) {
    const tokens = byActivity.get(f.activityId)!.sort((a, b) => (a.budgetSliceEnd! - a.amount) - (b.budgetSliceEnd! - b.amount) || (a.tokenId < b.tokenId ? -1 : 1));
    if (f.overlaps > 0) {
      // In start order, every token that starts before an earlier one ends, with that one.
      let reach: TokenRecord | null = null;
      for (const t of tokens) {
        const start = t.budgetSliceEnd! - t.amount;
        if (reach && start < reach.budgetSliceEnd!) {
          out.push({
            kind: 'budget_slice_overlap', activityId: f.activityId, userId: t.userId, orderNo: t.orderNo, tokenId: t.tokenId, currency: t.currency,
            expected: `>= ${reach.budgetSliceEnd}`, actual: start, events: [reach.tokenId, t.tokenId], repair: null,
            message: `token ${t.tokenId} (${t.amount} ${t.currency} to ${t.userId}, order ${t.orderNo}) took budget slice [${start}, ${t.budgetSliceEnd}) of activity ${f.activityId}, overlapping [${reach.budgetSliceEnd! - reach.amount}, ${reach.budgetSliceEnd}) of token ${reach.tokenId}: the same budget was issued twice`,
          });
        }
        if (!reach || t.budgetSliceEnd! > reach.budgetSliceEnd!) reach = t;
      }
    }
    const fundedOnLog = fundedOf(f.activityId);
    if (f.highestEnd > fundedOnLog) {
      const over = tokens.filter((t) => t.budgetSliceEnd! > fundedOnLog).sort((a, b) => a.budgetSliceEnd! - b.budgetSliceEnd!);
      out.push({
        kind: 'budget_slice_beyond_funding', activityId: f.activityId, account: account.activityBudget(f.activityId), currency: over[0]?.currency,
        expected: `<= ${fundedOnLog}`, actual: f.highestEnd, events: over.map((t) => t.tokenId), repair: null,
        message: `activity ${f.activityId} has budget slices up to ${f.highestEnd} but its fundings on the log total ${fundedOnLog}; the tokens whose slices end beyond it are listed`,
      });
    }
  }
  return out;
}

function neverCredited(tokens: readonly TokenRecord[], issuedBefore: number): Difference[] {
  return tokens
    .filter((t) => t.status === 'pending' && t.issuedAt < issuedBefore)
    .map((t) => ({
      kind: 'token_never_credited' as const, activityId: t.activityId, userId: t.userId, orderNo: t.orderNo, tokenId: t.tokenId,
      currency: t.currency, expected: 'credited', actual: 'pending', events: [t.tokenId], repair: 'credit_token' as const,
      repairData: { amount: t.amount, currency: t.currency },
      message: `token ${t.tokenId} (${t.amount} ${t.currency} to ${t.userId}, order ${t.orderNo}) was issued at ${new Date(t.issuedAt).toISOString()} and never credited`,
    }));
}

/**
 * Red packets (I7 across partitions): a share's credit is on the grabber's partition and its
 * claim on the sender's, so the fold cannot match them event by event; the audit does.
 * Claims and credits outside the fold (before or after the range) are looked up in the
 * projection. Overdue work is judged as for tokens: at audit time, and only if still open.
 */
async function packetDifferences(mem: FoldView, check: ProjectionCheck, startedAt: number, graceMs: number): Promise<Difference[]> {
  const key = (p: string, u: string) => `${p}/${u}`;
  const claims = new Map([...mem.packetClaims.values()].map((c) => [key(c.packetId, c.userId), c]));
  const pairs = [...new Map([...claims.values(), ...mem.packetCredits.values()].map((x) => [key(x.packetId, x.userId), x])).values()];
  const projected = await check.packetShares(pairs);
  const out: Difference[] = [];
  for (const k of mem.packetCredits.values()) {
    const claimed = claims.get(key(k.packetId, k.userId))?.amount ?? projected.claims.get(key(k.packetId, k.userId)) ?? null;
    if (claimed === k.amount) continue;
    out.push({
      kind: 'packet_credit_mismatch', userId: k.userId, packetId: k.packetId, currency: k.currency, expected: claimed, actual: k.amount,
      events: [shareCreditEventIdFor(k.packetId, k.userId)], repair: null,
      message: claimed === null
        ? `${k.userId} was credited ${k.amount} ${k.currency} from red packet ${k.packetId} without a claim`
        : `${k.userId} claimed ${claimed} from red packet ${k.packetId} but was credited ${k.amount} ${k.currency}`,
    });
  }
  for (const c of claims.values()) {
    const k = key(c.packetId, c.userId);
    if (c.claimedAt >= startedAt - graceMs || mem.packetCredits.has(k) || projected.credits.has(k)) continue;
    out.push({
      kind: 'packet_share_never_credited', userId: c.userId, packetId: c.packetId, currency: c.currency, expected: 'credited', actual: 'pending',
      events: [claimEventIdFor(c.packetId, c.userId)], repair: 'credit_share', repairData: { amount: c.amount, currency: c.currency },
      message: `${c.userId} grabbed ${c.amount} ${c.currency} from red packet ${c.packetId} at ${new Date(c.claimedAt).toISOString()} and it was never credited`,
    });
  }
  const expired = [...mem.packets.values()].filter((p) => p.status === 'open' && p.expiresAt < startedAt - graceMs);
  const stillOpen = await check.openPackets(expired.map((p) => p.packetId));
  for (const p of expired.filter((x) => stillOpen.has(x.packetId))) {
    out.push({
      kind: 'packet_refund_overdue', userId: p.senderId, packetId: p.packetId, currency: p.currency, expected: unclaimedOf(p), actual: 0,
      events: [p.packetId], repair: null,
      message: `red packet ${p.packetId} of ${p.senderId} expired at ${new Date(p.expiresAt).toISOString()} with ${unclaimedOf(p)} ${p.currency} unclaimed and was not refunded (is the packet keeper running?)`,
    });
  }
  return out;
}

/** The provider's payments the audit must look at: those made in the range, and those of the range's withdrawals. */
async function providerPaymentsInScope(provider: ProviderStatement, withdrawals: readonly WithdrawalRecord[], range: { from?: Date; to?: Date }): Promise<ProviderPayment[]> {
  const inRange = await provider.payments(range);
  const seen = new Set(inRange.map((p) => p.payoutId));
  const others = withdrawals.map((w) => w.withdrawalId).filter((id) => !seen.has(id));
  const extra = range.from ? await provider.lookup(others) : [];
  return [...inRange, ...extra];
}

/** Withdrawals outside the fold (requested before the range), as they stood at its end. */
async function withdrawalsAtEnd(pool: pg.Pool, check: ProjectionCheck, ids: string[]): Promise<WithdrawalRecord[]> {
  if (ids.length === 0) return [];
  const { rows } = await pool.query(`select ${WITHDRAWAL_COLUMNS} from withdrawals w where w.withdrawal_id = any($1::uuid[])`, [ids]);
  const records = rows.map(withdrawalFromRow);
  const resolvedAt = await check.positions(records.flatMap((w) => w.resolvedEventId ?? []));
  return records.map((w) => (w.resolvedEventId && check.afterEnd(resolvedAt.get(w.resolvedEventId))
    ? { ...w, status: 'withdrawing' as const, resolvedAt: null, resolvedEventId: null, reason: null, providerRef: null }
    : w));
}
