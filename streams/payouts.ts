import type { Runtime } from '../infra/runtime.ts';
import type { PayoutAttemptFailed, WithdrawalRequested } from '../domain/events.ts';
import { attemptFailedEventIdFor, failedEventIdFor, payoutBackoffMs, settledEventIdFor } from '../domain/withdrawals.ts';
import { runBatchConsumer, type ChunkContext, type RunningConsumer } from './batch-consumer.ts';
import { SharedRateLimiter } from './rate-limiter.ts';
import { CircuitBreaker } from './circuit-breaker.ts';
import type { PaymentProviderClient, PayoutOutcome } from './payment-provider-client.ts';

/** A payout to attempt: the first from a WithdrawalRequested, later ones from a re-produced PayoutAttemptFailed. */
interface PayoutJob {
  request: Omit<PayoutAttemptFailed, 'eventId' | 'occurredAt' | 'attempt' | 'retryAt' | 'reason'>;
  /** Attempts that already failed. */
  failed: number;
  retryAt: number;
}

const IN_FLIGHT = 32;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function jobOf(e: WithdrawalRequested | PayoutAttemptFailed, attempt: number, retryAt: number): PayoutJob {
  return {
    request: { activityId: e.activityId, traceId: e.traceId, withdrawalId: e.withdrawalId, userId: e.userId, amount: e.amount, currency: e.currency },
    failed: attempt,
    retryAt,
  };
}

/**
 * Pays withdrawals through the payment provider.
 *  - Reads WithdrawalRequested from the wallet topic, and its own re-produced attempts from
 *    the payouts topic. It pays only what the ledger accepted (the withdrawal's projected
 *    status is "withdrawing"), so nothing the fold refused is ever paid.
 *  - Stays within the provider's capacity with the shared rate limit (all instances).
 *  - A transient failure is re-produced to the payouts topic with exponential backoff, and
 *    the offset moves on: one failing payout never blocks the others behind it.
 *  - A circuit breaker stops calling a provider that keeps failing, and probes it again.
 *  - The outcome is an event: PayoutSettled or PayoutFailed, whose ids are derived from the
 *    withdrawal, so a redelivered request that is paid again (idempotently, by the
 *    provider) produces the same event and the ledger applies it once.
 * Offsets are committed only after the outcomes and retries were produced.
 */
export class PayoutProcessor {
  private consumer: RunningConsumer | null = null;
  readonly name: string;
  readonly breaker: CircuitBreaker;
  private readonly limiter: SharedRateLimiter;
  readonly counts = { settled: 0, rejected: 0, retried: 0, skipped: 0, calls: 0 };

  constructor(private readonly rt: Runtime, private readonly provider: PaymentProviderClient, opts: { groupId?: string } = {}) {
    this.name = opts.groupId ?? `${rt.cfg.namespace}.payouts`;
    // 20 ms slices: the provider counts capacity over short windows, so send small, even bursts.
    this.limiter = new SharedRateLimiter(rt.redis, `${rt.cfg.namespace}:rate:payouts`, rt.cfg.payoutRatePerSec, Date.now, 20);
    this.breaker = new CircuitBreaker({ failureThreshold: rt.cfg.breakerFailureThreshold, openMs: rt.cfg.breakerOpenMs });
  }

  async start(): Promise<void> {
    this.consumer = await runBatchConsumer(this.rt, {
      groupId: this.name,
      topics: [this.rt.topics.wallet, this.rt.topics.payouts],
      chunkSize: 200,
      partitionsConsumedConcurrently: 4,
      maxBytesPerPartition: 1 << 20,
      handle: async (items, ctx) => {
        const jobs: PayoutJob[] = [];
        for (const { event } of items) {
          if (event?.type === 'WithdrawalRequested') jobs.push(jobOf(event.data, 0, 0));
          else if (event?.type === 'PayoutAttemptFailed') jobs.push(jobOf(event.data, event.data.attempt, event.data.retryAt));
        }
        if (jobs.length > 0 && !(await this.process(jobs, ctx))) return 'stop';
        return { done: items[items.length - 1]!.offset + 1 };
      },
    });
  }

  /** Returns false if it stopped early (shutdown or rebalance); the chunk is then redelivered. */
  private async process(jobs: PayoutJob[], ctx: ChunkContext): Promise<boolean> {
    const status = await this.awaitProjected(jobs.map((j) => j.request.withdrawalId), ctx);
    if (!status) return false;
    const open = jobs.filter((j) => status.get(j.request.withdrawalId) === 'withdrawing');
    this.counts.skipped += jobs.length - open.length;
    // A few calls in flight at a time, so a provider that just went down sees a handful of
    // failures (enough to open the breaker), not a whole chunk of them.
    const outcomes: (PayoutOutcome | null)[] = new Array(open.length).fill(null);
    let next = 0;
    await Promise.all(Array.from({ length: Math.min(IN_FLIGHT, open.length) }, async () => {
      while (next < open.length && ctx.isActive()) {
        const i = next++;
        await this.waitUntil(open[i]!.retryAt, ctx);
        outcomes[i] = await this.call(open[i]!, ctx);
      }
    }));
    if (outcomes.some((o) => o === null)) return false;
    const now = Date.now();
    await Promise.all(open.map((job, i) => this.record(job, outcomes[i]!, now)));
    return true;
  }

  private async waitUntil(at: number, ctx: ChunkContext): Promise<void> {
    while (Date.now() < at && ctx.isActive()) {
      await sleep(Math.min(500, at - Date.now()));
      await ctx.heartbeat();
    }
  }

  /** The ledger's view of each withdrawal; waits for ones the projector has not applied yet. */
  private async awaitProjected(ids: string[], ctx: ChunkContext): Promise<Map<string, string> | null> {
    const unique = [...new Set(ids)];
    for (let round = 0; ; round++) {
      const { rows } = await this.rt.pool.query<{ withdrawal_id: string; status: string }>(
        'select withdrawal_id, status from withdrawals where withdrawal_id = any($1::uuid[])', [unique],
      );
      if (rows.length === unique.length) return new Map(rows.map((r) => [r.withdrawal_id, r.status]));
      if (!ctx.isActive()) return null;
      if (round % 100 === 99) this.rt.log.warn('payouts waiting for the ledger projection', { missing: unique.length - rows.length });
      await sleep(50);
      if (round % 10 === 9) await ctx.heartbeat();
    }
  }

  private async call(job: PayoutJob, ctx: ChunkContext): Promise<PayoutOutcome | null> {
    for (;;) {
      if (!ctx.isActive()) return null;
      const gate = this.breaker.tryAcquire();
      if (!gate.allowed) {
        await sleep(Math.min(gate.retryInMs, 250));
        await ctx.heartbeat();
        continue;
      }
      if ((await this.limiter.take(1, ctx.isActive)) === 0) return null;
      this.counts.calls++;
      const r = job.request;
      const outcome = await this.provider.pay({ payoutId: r.withdrawalId, userId: r.userId, amount: r.amount, currency: r.currency });
      this.breaker.record(outcome.kind !== 'transient');
      return outcome;
    }
  }

  private async record(job: PayoutJob, outcome: PayoutOutcome, now: number): Promise<void> {
    const r = job.request;
    const base = { activityId: r.activityId, traceId: r.traceId, withdrawalId: r.withdrawalId, userId: r.userId, amount: r.amount, currency: r.currency };
    switch (outcome.kind) {
      case 'settled':
        this.counts.settled++;
        return this.rt.publisher.publish('PayoutSettled', { ...base, eventId: settledEventIdFor(r.withdrawalId), occurredAt: now, providerRef: outcome.providerRef });
      case 'rejected':
        this.counts.rejected++;
        return this.rt.publisher.publish('PayoutFailed', { ...base, eventId: failedEventIdFor(r.withdrawalId), occurredAt: now, reason: outcome.reason });
      case 'transient': {
        this.counts.retried++;
        if (/^HTTP 4(?!29)/.test(outcome.reason)) {
          // Not overload: the provider refuses what we sent. Retrying cannot fix it and giving
          // up could return money that was paid, so it keeps retrying and says so loudly.
          this.rt.log.error('payment provider refuses a payout request; it needs a person', { withdrawalId: r.withdrawalId, reason: outcome.reason });
        }
        const attempt = job.failed + 1;
        return this.rt.publisher.publish('PayoutAttemptFailed', {
          ...base, eventId: attemptFailedEventIdFor(r.withdrawalId, attempt), occurredAt: now, attempt,
          retryAt: now + payoutBackoffMs(attempt, this.rt.cfg.payoutRetryBaseMs, this.rt.cfg.payoutRetryCapMs), reason: outcome.reason,
        });
      }
    }
  }

  async stop(): Promise<void> {
    await this.consumer?.stop();
    this.consumer = null;
  }
}
