import Fastify, { type FastifyInstance } from 'fastify';
import { randomUUID, timingSafeEqual } from 'node:crypto';
import type { PayoutRecords } from './store.ts';

/**
 * A runnable stand-in for the downstream payment provider (the one external system the
 * ledger talks to). It behaves like one: idempotent by payout id, a fixed capacity beyond
 * which it answers 429, latency, random failures (some of them after the payment was made,
 * so the caller cannot tell), and full outages. Behaviour is changed live via /admin/config.
 */
export interface ProviderBehaviour {
  /** Requests per second it accepts (a token bucket holding 100 ms worth); beyond it, 429. */
  capacityPerSec: number;
  latencyMs: number;
  /** Share of requests answered 500 before anything is recorded. */
  failureRate: number;
  /** Share of requests answered 500 after the payout was recorded: the response is "lost". */
  ambiguousFailureRate: number;
  /** Everything answers 503. */
  outage: boolean;
  /** Users whose payouts are refused for good (closed or frozen accounts). */
  blockedUsers: string[];
}

export interface ProviderStats {
  requests: number;
  paid: number;
  replayed: number;
  overCapacity: number;
  failed: number;
  ambiguous: number;
  outageRefused: number;
  rejected: number;
}

export const defaultBehaviour = (): ProviderBehaviour => ({
  capacityPerSec: 2000, latencyMs: 5, failureRate: 0, ambiguousFailureRate: 0, outage: false, blockedUsers: [],
});

const BURST_MS = 100;

export async function buildProvider(records: PayoutRecords, opts: { apiKey: string; behaviour?: Partial<ProviderBehaviour> }): Promise<FastifyInstance & { behaviour: ProviderBehaviour; stats: ProviderStats }> {
  const app = Fastify({ logger: false }) as unknown as FastifyInstance & { behaviour: ProviderBehaviour; stats: ProviderStats };
  app.behaviour = { ...defaultBehaviour(), ...opts.behaviour };
  app.stats = { requests: 0, paid: 0, replayed: 0, overCapacity: 0, failed: 0, ambiguous: 0, outageRefused: 0, rejected: 0 };
  let tokens = 0;
  let refilledAt = Date.now();
  const key = Buffer.from(opts.apiKey);

  app.addHook('onRequest', async (req, reply) => {
    const got = Buffer.from((req.headers.authorization ?? '').replace(/^Bearer /, ''));
    if (got.length !== key.length || !timingSafeEqual(got, key)) return reply.status(401).send({ code: 'UNAUTHORIZED' });
  });

  app.post<{ Body: { payoutId: string; userId: string; amount: number; currency: string } }>('/v1/payouts', {
    schema: {
      body: {
        type: 'object', additionalProperties: false, required: ['payoutId', 'userId', 'amount', 'currency'],
        properties: { payoutId: { type: 'string', minLength: 1, maxLength: 128 }, userId: { type: 'string', minLength: 1 }, amount: { type: 'integer', minimum: 1 }, currency: { type: 'string' } },
      },
    },
  }, async (req, reply) => {
    const b = app.behaviour;
    app.stats.requests++;
    if (b.outage) {
      app.stats.outageRefused++;
      return reply.status(503).send({ code: 'UNAVAILABLE' });
    }
    const now = Date.now();
    const burst = Math.max(1, (b.capacityPerSec * BURST_MS) / 1000);
    tokens = Math.min(burst, tokens + ((now - refilledAt) * b.capacityPerSec) / 1000);
    refilledAt = now;
    if (tokens < 1) {
      app.stats.overCapacity++;
      return reply.status(429).send({ code: 'OVER_CAPACITY' });
    }
    tokens -= 1;
    if (b.latencyMs > 0) await new Promise((r) => setTimeout(r, b.latencyMs));
    if (Math.random() < b.failureRate) {
      app.stats.failed++;
      return reply.status(500).send({ code: 'INTERNAL' });
    }
    const blocked = b.blockedUsers.includes(req.body.userId);
    const { record, created } = await records.pay({
      ...req.body, status: blocked ? 'rejected' : 'succeeded', reason: blocked ? 'ACCOUNT_BLOCKED' : null, providerRef: `psp-${randomUUID()}`,
    });
    if (record.amount !== req.body.amount || record.userId !== req.body.userId || record.currency !== req.body.currency) {
      return reply.status(409).send({ code: 'PAYOUT_CONFLICT', message: 'this payout id was used for a different payout' });
    }
    if (created) {
      if (record.status === 'succeeded') app.stats.paid++;
      else app.stats.rejected++;
    } else {
      app.stats.replayed++;
    }
    if (Math.random() < b.ambiguousFailureRate) {
      app.stats.ambiguous++;
      return reply.status(500).send({ code: 'INTERNAL' });
    }
    return reply.status(created ? 201 : 200).send(record);
  });

  app.get<{ Params: { payoutId: string } }>('/v1/payouts/:payoutId', async (req, reply) => {
    const r = await records.get(req.params.payoutId);
    return r ? r : reply.status(404).send({ code: 'NOT_FOUND' });
  });

  app.get<{ Querystring: { after?: number; limit?: number; from?: string; to?: string } }>('/v1/payouts', {
    schema: {
      querystring: {
        type: 'object', additionalProperties: false,
        properties: {
          after: { type: 'integer', minimum: 0 }, limit: { type: 'integer', minimum: 1, maximum: 1000 },
          from: { type: 'string', format: 'date-time' }, to: { type: 'string', format: 'date-time' },
        },
      },
    },
  }, async (req) => records.list(req.query.after ?? 0, req.query.limit ?? 100, {
    from: req.query.from ? new Date(req.query.from) : undefined, to: req.query.to ? new Date(req.query.to) : undefined,
  }));

  app.post<{ Body: { payoutIds: string[] } }>('/v1/payouts/lookup', {
    schema: {
      body: {
        type: 'object', additionalProperties: false, required: ['payoutIds'],
        properties: { payoutIds: { type: 'array', maxItems: 1000, items: { type: 'string', minLength: 1, maxLength: 128 } } },
      },
    },
  }, async (req) => records.byPayoutIds(req.body.payoutIds));

  app.get('/admin/config', async () => app.behaviour);
  app.put<{ Body: Partial<ProviderBehaviour> }>('/admin/config', {
    schema: {
      body: {
        type: 'object', additionalProperties: false,
        properties: {
          capacityPerSec: { type: 'integer', minimum: 1 }, latencyMs: { type: 'integer', minimum: 0 },
          failureRate: { type: 'number', minimum: 0, maximum: 1 }, ambiguousFailureRate: { type: 'number', minimum: 0, maximum: 1 },
          outage: { type: 'boolean' }, blockedUsers: { type: 'array', items: { type: 'string' } },
        },
      },
    },
  }, async (req) => {
    app.behaviour = { ...app.behaviour, ...req.body };
    return app.behaviour;
  });
  app.get('/admin/stats', async () => app.stats);
  return app;
}
