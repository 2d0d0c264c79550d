import type { ProviderPayment } from './payout-match.ts';

/** A payment as the provider's API sends it: the same fields, with its time as ISO text. */
type RecordBody = Omit<ProviderPayment, 'createdAt'> & { createdAt: string };

const toPayment = (r: RecordBody): ProviderPayment => ({
  payoutId: r.payoutId, providerRef: r.providerRef, userId: r.userId, amount: r.amount, currency: r.currency,
  status: r.status, reason: r.reason, createdAt: Date.parse(r.createdAt), seq: r.seq,
});

/**
 * The provider's books as reconciliation reads them: its statement (every payment, in the
 * order made, optionally for a time range) and a lookup by payout id. Read-only.
 */
export class ProviderStatement {
  constructor(private readonly baseUrl: string, private readonly apiKey: string, private readonly timeoutMs = 30_000) {}

  private async call(path: string, init: RequestInit = {}): Promise<{ records: RecordBody[] }> {
    const res = await fetch(`${this.baseUrl}${path}`, {
      ...init,
      headers: { authorization: `Bearer ${this.apiKey}`, ...(init.body ? { 'content-type': 'application/json' } : {}) },
      signal: AbortSignal.timeout(this.timeoutMs),
    });
    if (!res.ok) throw new Error(`payment provider answered ${res.status} to ${path}: ${await res.text()}`);
    return (await res.json()) as { records: RecordBody[] };
  }

  /** Every payment made in [from, to), or all of them. */
  async payments(range: { from?: Date; to?: Date } = {}): Promise<ProviderPayment[]> {
    const out: ProviderPayment[] = [];
    let after = 0;
    for (;;) {
      const q = new URLSearchParams({ after: String(after), limit: '1000' });
      if (range.from) q.set('from', range.from.toISOString());
      if (range.to) q.set('to', range.to.toISOString());
      const { records } = await this.call(`/v1/payouts?${q}`);
      out.push(...records.map(toPayment));
      if (records.length < 1000) return out;
      after = records[records.length - 1]!.seq;
    }
  }

  async lookup(payoutIds: readonly string[]): Promise<ProviderPayment[]> {
    const out: ProviderPayment[] = [];
    for (let i = 0; i < payoutIds.length; i += 1000) {
      const { records } = await this.call('/v1/payouts/lookup', { method: 'POST', body: JSON.stringify({ payoutIds: payoutIds.slice(i, i + 1000) }) });
      out.push(...records.map(toPayment));
    }
    return out;
  }
}
