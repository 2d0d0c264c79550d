import type { Kafka } from 'kafkajs';
import { MemoryLedger, type Anomaly, type BudgetSlices, type TokenRecord } from '../domain/ledger.ts';
import type { Currency } from '../domain/money.ts';
import type { LedgerEvent } from '../domain/events.ts';
import type { WithdrawalRecord } from '../domain/withdrawals.ts';
import type { PacketClaimRecord, PacketCreditRecord, PacketRecord } from '../domain/packets.ts';
import { IdSet, type IdSetData } from '../domain/id-set.ts';
import type { EventCodec } from '../schemas/codec.ts';
import type { Difference } from './differences.ts';
import { Digest, idBucket, type DigestData } from './digest.ts';
import { whoOf } from './projection-check.ts';
import { eventHash, postingHash, tokenHash, tokenStateHash, withdrawalHash, withdrawalStateHash } from './row-hash.ts';
import { replayRanges, type PartitionRange } from './replay.ts';

/**
 * The fold of a whole-log audit, over some of the log's partitions: the ledger's own rules
 * (MemoryLedger) applied to every event, reduced to what the audit compares. Every rule of
 * the fold reads state of one partition only (a user's events are on the user's partition,
 * a packet's on its sender's), and everything else adds up, so a log's partitions can be
 * folded apart, in parallel (fold-worker.ts), and the outcomes merged (mergeFolds).
 */
export interface Flow {
  count: number;
  amount: number;
}

/** Plain data: it crosses from a worker thread to the audit. */
export interface FoldOutcome {
  events: number;
  undecodable: number;
  duplicates: number;
  flows: Record<string, Flow>;
  digests: Record<'events' | 'postings' | 'tokens' | 'withdrawals', DigestData>;
  balances: [string, { currency: Currency; balance: number }][];
  /** Only pending tokens cross (the overdue check); the rest are in the token digest. */
  pendingTokens: TokenRecord[];
  tokenCount: number;
  withdrawals: WithdrawalRecord[];
  packets: PacketRecord[];
  packetClaims: [string, PacketClaimRecord][];
  packetCredits: [string, PacketCreditRecord][];
  applied: IdSetData;
  differences: Difference[];
  /** I10: per activity, the budget slices of the tokens the fold accepted, and what its BudgetFunded events brought. */
  slices: [string, BudgetSlices][];
  funded: [string, number][];
}

/** Adds an accepted token's budget slice to its activity's (I10, checked by the audit once the log is folded). */
export function addSlice(slices: Map<string, BudgetSlices>, t: TokenRecord): void {
  if (t.budgetSliceEnd === null) return;
  let s = slices.get(t.activityId);
  if (!s) slices.set(t.activityId, (s = { starts: [], ends: [] }));
  s.starts.push(t.budgetSliceEnd - t.amount);
  s.ends.push(t.budgetSliceEnd);
}

/** Adds an applied funding to its activity's total on the log. */
export function addFunding(funded: Map<string, number>, event: LedgerEvent): void {
  if (event.type === 'BudgetFunded') funded.set(event.data.activityId, (funded.get(event.data.activityId) ?? 0) + event.data.amount);
}

export function anomalyDifference(a: Anomaly, event: LedgerEvent): Difference {
  const who = whoOf(event);
  if (a.kind === 'token_credited_twice') {
    return {
      kind: 'token_credited_twice', ...who, tokenId: a.tokenId, events: [a.tokenId, a.eventId], expected: 1, actual: 2, repair: null,
      message: `token ${a.tokenId} was credited again by ${a.eventId}; the ledger refused the second credit`,
    };
  }
  return {
    kind: 'rejected_event', ...who, events: [a.eventId], expected: 'applied', actual: a.kind, repair: null,
    message: `the ledger refused ${event.type} ${a.eventId}: ${a.kind} ${JSON.stringify(a)}`,
  };
}

/** Money moved, by event type: counted once per applied event with postings. */
export function countFlow(flows: Record<string, Flow>, event: LedgerEvent): void {
  const f = (flows[event.type] ??= { count: 0, amount: 0 });
  f.count++;
  f.amount += 'amount' in event.data ? event.data.amount : 0;
}

export async function foldRanges(
  kafka: Kafka, codec: EventCodec, ranges: readonly PartitionRange[], onProgress?: (events: number) => void,
): Promise<FoldOutcome> {
  const mem = new MemoryLedger();
  const events = new Digest();
  const postings = new Digest();
  const flows: Record<string, Flow> = {};
  const differences: Difference[] = [];
  const funded = new Map<string, number>();
  let duplicates = 0;
  const read = await replayRanges(kafka, codec, ranges, (batch) => {
    for (const event of batch) {
      const fx = mem.apply(event);
      if (!fx) {
        duplicates++;
        continue;
      }
      if (fx.postings.length > 0) {
        countFlow(flows, event);
        addFunding(funded, event);
      }
      const id = event.data.eventId;
      const b = idBucket(id);
      events.add(b, eventHash(id));
      for (let leg = 0; leg < fx.postings.length; leg++) postings.add(b, postingHash(id, leg, fx.postings[leg]!));
      for (const a of fx.anomalies) differences.push(anomalyDifference(a, event));
    }
    onProgress?.(batch.length);
  });
  const tokens = new Digest();
  const pendingTokens: TokenRecord[] = [];
  const slices = new Map<string, BudgetSlices>();
  for (const t of mem.tokens.values()) {
    tokens.add(idBucket(t.tokenId), tokenHash(t) + tokenStateHash(t));
    if (t.status === 'pending') pendingTokens.push(t);
    addSlice(slices, t);
  }
  const withdrawals = new Digest();
  for (const w of mem.withdrawals.values()) withdrawals.add(idBucket(w.withdrawalId), withdrawalHash(w) + withdrawalStateHash(w));
  return {
    events: read.events, undecodable: read.undecodable, duplicates, flows,
    digests: { events: events.toData(), postings: postings.toData(), tokens: tokens.toData(), withdrawals: withdrawals.toData() },
    balances: [...mem.balances], pendingTokens, tokenCount: mem.tokens.size, withdrawals: [...mem.withdrawals.values()],
    packets: [...mem.packets.values()], packetClaims: [...mem.packetClaims], packetCredits: [...mem.packetCredits],
    applied: mem.applied.toData(), differences, slices: [...slices], funded: [...funded],
  };
}

/**
 * What the audit's checks after the fold read of it: a MemoryLedger (a range audit's fold)
 * or the merged folds of a whole log's partitions.
 */
export interface FoldView {
  balances: ReadonlyMap<string, { currency: Currency; balance: number }>;
  withdrawals: ReadonlyMap<string, WithdrawalRecord>;
  packets: ReadonlyMap<string, PacketRecord>;
  packetClaims: ReadonlyMap<string, PacketClaimRecord>;
  packetCredits: ReadonlyMap<string, PacketCreditRecord>;
  applied: { has(id: string): boolean };
}

/** The folds of a log's partitions, merged: what one fold of the whole log would have given. */
export interface MergedFold extends FoldView, Pick<FoldOutcome, 'events' | 'undecodable' | 'duplicates' | 'flows' | 'pendingTokens' | 'tokenCount' | 'differences'> {
  digests: Record<'events' | 'postings' | 'tokens' | 'withdrawals', Digest>;
  balances: Map<string, { currency: Currency; balance: number }>;
  slices: Map<string, BudgetSlices>;
  funded: Map<string, number>;
}

/**
 * Merges the folds of disjoint sets of partitions as each finishes (so the audit merges its
 * own while a worker is still folding). The result is null when an event id was folded in
 * two of them: each fold applied it once, where one fold of the whole log applies it once
 * in all; the audit then folds the whole log in one piece.
 */
export class FoldMerge {
  private readonly applied: IdSet[] = [];
  private overlap = false;
  private readonly withdrawals = new Map<string, WithdrawalRecord>();
  private readonly packets = new Map<string, PacketRecord>();
  private readonly packetClaims = new Map<string, PacketClaimRecord>();
  private readonly packetCredits = new Map<string, PacketCreditRecord>();
  private readonly merged: MergedFold = {
    events: 0, undecodable: 0, duplicates: 0, flows: {},
    digests: { events: new Digest(), postings: new Digest(), tokens: new Digest(), withdrawals: new Digest() },
    balances: new Map(), pendingTokens: [], tokenCount: 0, slices: new Map(), funded: new Map(),
    withdrawals: this.withdrawals, packets: this.packets, packetClaims: this.packetClaims, packetCredits: this.packetCredits,
    applied: { has: (id) => this.applied.some((s) => s.has(id)) }, differences: [],
  };

  add(o: FoldOutcome): void {
    const applied = IdSet.fromData(o.applied);
    if (this.applied.some((s) => s.intersects(applied))) this.overlap = true;
    this.applied.push(applied);
    const m = this.merged;
    m.events += o.events;
    m.undecodable += o.undecodable;
    m.duplicates += o.duplicates;
    for (const [type, f] of Object.entries(o.flows)) {
      const t = (m.flows[type] ??= { count: 0, amount: 0 });
      t.count += f.count;
      t.amount += f.amount;
    }
    for (const k of ['events', 'postings', 'tokens', 'withdrawals'] as const) m.digests[k].merge(o.digests[k]);
    for (const [account, b] of o.balances) {
      const cur = m.balances.get(account);
      if (cur) cur.balance += b.balance;
      else m.balances.set(account, { ...b });
    }
    m.pendingTokens.push(...o.pendingTokens);
    // An activity's tokens are on many users' partitions, its fundings on the budget topic.
    for (const [activityId, s] of o.slices) {
      const cur = m.slices.get(activityId);
      if (!cur) m.slices.set(activityId, s);
      else for (let i = 0; i < s.starts.length; i++) { cur.starts.push(s.starts[i]!); cur.ends.push(s.ends[i]!); }
    }
    for (const [activityId, amount] of o.funded) m.funded.set(activityId, (m.funded.get(activityId) ?? 0) + amount);
    m.tokenCount += o.tokenCount;
    for (const w of o.withdrawals) this.withdrawals.set(w.withdrawalId, w);
    for (const p of o.packets) this.packets.set(p.packetId, p);
    for (const [k, c] of o.packetClaims) this.packetClaims.set(k, c);
    for (const [k, c] of o.packetCredits) this.packetCredits.set(k, c);
    m.differences.push(...o.differences);
  }

  result(): MergedFold | null {
    return this.overlap ? null : this.merged;
  }
}

export function mergeFolds(outcomes: readonly FoldOutcome[]): MergedFold | null {
  const merge = new FoldMerge();
  for (const o of outcomes) merge.add(o);
  return merge.result();
}

/** Splits ranges into at most `n` groups of about equal size (by events), keeping each partition whole. */
export function splitRanges(ranges: readonly PartitionRange[], n: number): PartitionRange[][] {
  const groups = Array.from({ length: Math.max(1, n) }, () => ({ size: 0, ranges: [] as PartitionRange[] }));
  for (const r of [...ranges].filter((x) => x.end > x.start).sort((a, b) => (b.end - b.start) - (a.end - a.start))) {
    const g = groups.reduce((min, x) => (x.size < min.size ? x : min));
    g.ranges.push(r);
    g.size += r.end - r.start;
  }
  return groups.filter((g) => g.ranges.length > 0).map((g) => g.ranges);
}
