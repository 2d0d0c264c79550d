/**
 * The payment provider as the payout processor sees it. Every call carries the payout id
 * as its idempotency key, so a retry after a lost answer returns the first outcome instead
 * of paying twice. Outcomes:
 *  - settled / rejected: the provider's definitive answer, recorded in its books;
 *  - transient: no answer we can trust (outage, overload, timeout, 5xx); try again later.
 */
export type PayoutOutcome =
  | { kind: 'settled'; providerRef: string }
  | { kind: 'rejected'; reason: string }
  | { kind: 'transient'; reason: string };

export interface PayoutCall {
  payoutId: string;
  userId: string;
  amount: number;
  currency: string;
}

export class PaymentProviderClient {
  constructor(private readonly baseUrl: string, private readonly apiKey: string, private readonly timeoutMs = 5_000) {}

  async pay(call: PayoutCall): Promise<PayoutOutcome> {
    let res: Response;
    try {
      res = await fetch(`${this.baseUrl}/v1/payouts`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${this.apiKey}`, 'idempotency-key': call.payoutId },
        body: JSON.stringify(call),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      return { kind: 'transient', reason: `no answer: ${(err as Error).name}` };
    }
    const body = (await res.json().catch(() => null)) as { status?: string; reason?: string; providerRef?: string; code?: string } | null;
    if (res.status === 200 || res.status === 201) {
      if (body?.status === 'succeeded' && body.providerRef) return { kind: 'settled', providerRef: body.providerRef };
      if (body?.status === 'rejected') return { kind: 'rejected', reason: body.reason ?? 'REJECTED' };
      return { kind: 'transient', reason: `unreadable answer (HTTP ${res.status})` };
    }
    // 4xx other than overload means we sent something the provider will never accept: that
    // is our bug, and retrying cannot fix it, but neither may it return money that might be paid.
    return { kind: 'transient', reason: `HTTP ${res.status}${body?.code ? ` ${body.code}` : ''}` };
  }
}
