// The campaign's HTTP client: a caller that behaves as upstream services and wallet apps
// should. A request that times out, finds no instance, or is answered 503 (or 500) is sent
// again with the same key (order number, draw id, Idempotency-Key) until it gets a final
// answer; signed requests are signed afresh each time (a new nonce). Every attempt is logged
// with its time, instance and answer, for the 500/503 accounting.
import { signRequest } from '../../api/auth/upstream-signature.ts';
import { signUserToken } from '../../api/auth/user-jwt.ts';
import type { Cluster } from './cluster.ts';

export type Auth = { kind: 'upstream' } | { kind: 'user'; userId: string } | { kind: 'admin' };

export interface Attempt {
  route: string;
  /** The request's idempotency key (order number, draw id, Idempotency-Key, ...). */
  key: string;
  at: number;
  ms: number;
  instance: number;
  /** HTTP status, or 'timeout' (no answer in time), or 'conn' (no connection: the instance is down). */
  status: number | 'timeout' | 'conn';
  code?: string;
}

export interface Answer {
  status: number;
  body: any;
  replayed: boolean;
  sentAt: number;
  answeredAt: number;
  attempts: Attempt[];
}

export interface ClientOptions {
  /** How long one attempt may take before the client gives up on it and sends it again. */
  attemptTimeoutMs: number;
  /** How long a request is retried in all before it counts as unanswered. */
  giveUpMs: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class ChaosClient {
  /** Every attempt of every request, in the order they ended. */
  readonly attempts: Attempt[] = [];
  /** Requests that got no final answer within giveUpMs. */
  readonly unanswered: { route: string; key: string; attempts: Attempt[] }[] = [];
  private readonly tokens = new Map<string, { token: string; exp: number }>();
  private next = 0;
  inFlight = 0;

  constructor(private readonly c: Cluster, private readonly opts: ClientOptions) {}

  private userToken(userId: string): string {
    const now = Date.now();
    const cached = this.tokens.get(userId);
    if (cached && cached.exp > now + 60_000) return cached.token;
    const token = signUserToken(this.c.userKeyPem, this.c.userKeyId, userId, { ttlSec: 3_600 });
    this.tokens.set(userId, { token, exp: now + 3_600_000 });
    return token;
  }

  private headers(method: string, path: string, payload: string, auth: Auth, extra: Record<string, string>): Record<string, string> {
    const h: Record<string, string> = { ...extra };
    if (payload) h['content-type'] = 'application/json';
    if (auth.kind === 'upstream') Object.assign(h, signRequest(this.c.upstream, method, path, payload));
    else if (auth.kind === 'user') h.authorization = `Bearer ${this.userToken(auth.userId)}`;
    else h.authorization = `Bearer ${this.c.adminToken}`;
    return h;
  }

  /**
   * Sends until a final answer: any 2xx or 4xx. Returns null if none came within giveUpMs
   * (recorded in `unanswered`). `route` names the request kind in the accounting; `key` its
   * idempotency key.
   */
  async send(route: string, key: string, method: 'GET' | 'POST' | 'PUT', path: string, body: unknown, auth: Auth, extra: Record<string, string> = {}): Promise<Answer | null> {
    const payload = body === undefined ? '' : JSON.stringify(body);
    const sentAt = Date.now();
    const mine: Attempt[] = [];
    let instance = this.next++ % this.c.apiUrls.length;
    let backoff = 200;
    this.inFlight++;
    try {
      for (;;) {
        const at = Date.now();
        let attempt: Attempt;
        try {
          const res = await fetch(`${this.c.apiUrls[instance]}${path}`, {
            method, body: payload || undefined, headers: this.headers(method, path, payload, auth, extra),
            signal: AbortSignal.timeout(this.opts.attemptTimeoutMs),
          });
          const text = await res.text();
          let json: any = null;
          try { json = text ? JSON.parse(text) : null; } catch { json = { unparsed: text.slice(0, 200) }; }
          attempt = { route, key, at, ms: Date.now() - at, instance, status: res.status, ...(res.status >= 400 && json?.code ? { code: String(json.code) } : {}) };
          this.record(attempt, mine);
          if (res.status < 500) {
            return { status: res.status, body: json, replayed: res.headers.get('idempotent-replayed') === 'true', sentAt, answeredAt: Date.now(), attempts: mine };
          }
          const retryAfter = Number(res.headers.get('retry-after'));
          await sleep(Number.isFinite(retryAfter) && retryAfter > 0 ? Math.min(retryAfter * 1000, 2_000) : backoff);
        } catch (err) {
          const name = (err as Error).name;
          const timedOut = name === 'TimeoutError' || name === 'AbortError';
          attempt = { route, key, at, ms: Date.now() - at, instance, status: timedOut ? 'timeout' : 'conn' };
          this.record(attempt, mine);
          // The other instance, as a load balancer would; a short pause if both seem down.
          instance = (instance + 1) % this.c.apiUrls.length;
          if (!timedOut && mine.length % this.c.apiUrls.length !== 0) continue;
          await sleep(backoff);
        }
        backoff = Math.min(2_000, backoff * 2);
        if (Date.now() - sentAt > this.opts.giveUpMs) {
          this.unanswered.push({ route, key, attempts: mine });
          return null;
        }
      }
    } finally {
      this.inFlight--;
    }
  }

  private record(a: Attempt, mine: Attempt[]): void {
    mine.push(a);
    this.attempts.push(a);
  }
}
