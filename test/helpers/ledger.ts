import { randomBytes, randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { loadConfig, type Config } from '../../infra/config.ts';
import { openRuntime, setupNamespace, removeNamespace, type Runtime } from '../../infra/runtime.ts';
import { kafkaClient } from '../../infra/kafka.ts';
import { buildApp, type AppOptions, type AppSecrets } from '../../api/app.ts';
import { generateSigningKeyPem, publicKeyOf } from '../../domain/tokens.ts';
import { signUserToken } from '../../api/auth/user-jwt.ts';
import { signRequest } from '../../api/auth/upstream-signature.ts';
import { LedgerProjector } from '../../projections/ledger-projector.ts';
import { CreditingProcessor } from '../../streams/crediting.ts';
import { MemoryLedger } from '../../domain/ledger.ts';
import { creditFor } from '../../domain/grants.ts';
import { replayTopics } from '../../reconcile/replay.ts';
import { PayoutProcessor } from '../../streams/payouts.ts';
import { PaymentProviderClient } from '../../streams/payment-provider-client.ts';
import { PayoutRecords } from '../../simulator/payment-provider/store.ts';
import { buildProvider, type ProviderBehaviour } from '../../simulator/payment-provider/app.ts';

export type Provider = Awaited<ReturnType<typeof buildProvider>> & { url: string; apiKey: string; records: PayoutRecords; configure(b: Partial<ProviderBehaviour>): void };

interface TapLike { teardown(fn: () => unknown): void }

export interface TestLedger {
  ns: string;
  cfg: Config;
  rt: Runtime;
  app: FastifyInstance;
  secrets: AppSecrets;
  upstreamKey: { id: string; secret: string };
  projector?: LedgerProjector;
  crediting?: CreditingProcessor;
  payouts?: PayoutProcessor;
  provider?: Provider;
  /** A signed upstream request through the app (no network). */
  signed(method: 'POST' | 'PUT' | 'GET', url: string, body?: unknown, headers?: Record<string, string>): Promise<{ statusCode: number; json: any; headers: Record<string, unknown> }>;
  admin(method: 'POST' | 'PUT' | 'GET', url: string, body?: unknown): Promise<{ statusCode: number; json: any }>;
  /** A user token for userId, signed with the test login key. */
  userToken(userId: string): string;
  /** A request as a signed-in user. */
  asUser(userId: string, method: 'GET' | 'POST', url: string, body?: unknown, headers?: Record<string, string>): Promise<{ statusCode: number; json: any; headers: Record<string, unknown> }>;
  /** Creates an activity with the given budget (fen) and single-grant cap. */
  activity(opts?: { budget?: number; maxSingleGrant?: number; id?: string }): Promise<string>;
  /** Folds the namespace's topics from the beginning with the domain rules. */
  cleanFold(): Promise<MemoryLedger>;
  waitFor<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs?: number): Promise<T>;
}

export function testNamespace(): string {
  return `t_${randomBytes(5).toString('hex')}`;
}

export async function startTestLedger(
  t: TapLike,
  opts: {
    projector?: boolean; crediting?: boolean; creditRatePerSec?: number; ns?: string;
    /** Runs the payment-provider simulator and the payout processor. */
    payouts?: boolean; provider?: Partial<ProviderBehaviour>; config?: Partial<Config>;
    app?: AppOptions;
  } = {},
): Promise<TestLedger> {
  const ns = opts.ns ?? testNamespace();
  const cfg = loadConfig({ namespace: ns, partitions: 3 });
  await setupNamespace(cfg);
  const rt = await openRuntime('test', {
    namespace: ns, partitions: 3, produceLingerMs: 1,
    payoutRetryBaseMs: 100, payoutRetryCapMs: 1_000, breakerFailureThreshold: 3, breakerOpenMs: 500, walletCacheMs: 0, ...opts.config,
  });
  const upstreamKey = { id: 'test-upstream', secret: randomBytes(16).toString('hex') };
  const userKeyPem = generateSigningKeyPem();
  const secrets: AppSecrets = {
    tokenSigningKeyPem: generateSigningKeyPem(),
    adminToken: randomBytes(16).toString('hex'),
    upstreamKeys: new Map([[upstreamKey.id, upstreamKey.secret]]),
    userTokenKeys: new Map([['test-login', publicKeyOf(userKeyPem)]]),
  };
  const app = await buildApp(rt, secrets, opts.app);
  const ledger: TestLedger = {
    ns, cfg: rt.cfg, rt, app, secrets, upstreamKey,
    async signed(method, url, body, headers = {}) {
      const payload = body === undefined ? '' : JSON.stringify(body);
      const res = await app.inject({
        method, url, payload: payload || undefined,
        headers: { ...(payload ? { 'content-type': 'application/json' } : {}), ...signRequest(upstreamKey, method, url, payload), ...headers },
      });
      return { statusCode: res.statusCode, json: res.body ? JSON.parse(res.body) : null, headers: res.headers };
    },
    async admin(method, url, body) {
      const res = await app.inject({ method, url, payload: body as object, headers: { authorization: `Bearer ${secrets.adminToken}` } });
      return { statusCode: res.statusCode, json: JSON.parse(res.body) };
    },
    userToken: (userId) => signUserToken(userKeyPem, 'test-login', userId),
    async asUser(userId, method, url, body, headers = {}) {
      const res = await app.inject({
        method, url, payload: body === undefined ? undefined : (body as object),
        headers: { authorization: `Bearer ${ledger.userToken(userId)}`, ...headers },
      });
      return { statusCode: res.statusCode, json: res.body ? JSON.parse(res.body) : null, headers: res.headers };
    },
    async activity({ budget = 1_000_000, maxSingleGrant = 20_000, id = `act-${randomUUID().slice(0, 8)}` } = {}) {
      const a = await ledger.admin('PUT', `/v1/admin/activities/${id}`, { name: `Test ${id}`, currency: 'CNY', maxSingleGrant });
      if (a.statusCode !== 200) throw new Error(`activity setup failed: ${JSON.stringify(a.json)}`);
      if (budget > 0) {
        const f = await ledger.admin('POST', `/v1/admin/activities/${id}/fundings`, { fundingId: 'initial', amount: budget, currency: 'CNY' });
        if (f.statusCode !== 201) throw new Error(`funding failed: ${JSON.stringify(f.json)}`);
      }
      return id;
    },
    async cleanFold() {
      const mem = new MemoryLedger();
      const kafka = kafkaClient(rt.cfg, `${ns}-fold`);
      const ordered: Parameters<MemoryLedger['apply']>[0][] = [];
      await replayTopics(kafka, rt.codec, [rt.topics.budget, rt.topics.wallet], (e) => ordered.push(e));
      // Funding first, as the API only grants against acknowledged funding; then wallet events in partition order.
      for (const e of ordered.filter((o) => o.type === 'BudgetFunded')) mem.apply(e);
      for (const e of ordered.filter((o) => o.type !== 'BudgetFunded')) mem.apply(e);
      return mem;
    },
    async waitFor(what, probe, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const v = await probe();
        if (v !== undefined && v !== false) return v as any;
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
  };
  if (opts.projector !== false) {
    ledger.projector = new LedgerProjector(rt);
    await ledger.projector.start();
  }
  if (opts.crediting) {
    ledger.crediting = new CreditingProcessor(rt, { ratePerSec: opts.creditRatePerSec ?? 100_000 });
    await ledger.crediting.start();
  }
  if (opts.payouts) {
    const apiKey = randomBytes(16).toString('hex');
    const records = new PayoutRecords(rt.cfg.databaseUrl, `${ns}_psp`);
    await records.migrate();
    const app = await buildProvider(records, { apiKey, behaviour: opts.provider });
    const url = await app.listen({ host: '127.0.0.1', port: 0 });
    ledger.provider = Object.assign(app, { url, apiKey, records, configure: (b: Partial<ProviderBehaviour>) => { app.behaviour = { ...app.behaviour, ...b }; } });
    ledger.payouts = new PayoutProcessor(rt, new PaymentProviderClient(url, apiKey, 2_000));
    await ledger.payouts.start();
  }
  t.teardown(async () => {
    await ledger.payouts?.stop();
    if (ledger.provider) {
      await ledger.provider.close();
      await ledger.provider.records.drop();
      await ledger.provider.records.close();
    }
    await ledger.crediting?.stop();
    await ledger.projector?.stop();
    await app.close();
    await removeNamespace(rt);
    await rt.close();
  });
  return ledger;
}

export async function wallet(l: TestLedger, userId: string) {
  const res = await l.asUser(userId, 'GET', `/v1/wallets/${userId}`);
  if (res.statusCode !== 200) throw new Error(`wallet read failed: ${JSON.stringify(res.json)}`);
  return res.json;
}

/**
 * Gives a user an available balance the way the ledger does: a funded activity, a granted
 * reward, its credit. The credit is produced here, so it works without a crediting processor
 * (where one runs, its copy of the credit is a no-op).
 */
export async function fundedUser(l: TestLedger, userId: string, amount: number): Promise<void> {
  const act = await l.activity({ budget: amount });
  const res = await l.signed('POST', '/v1/grants', { activityId: act, sceneId: 's', orderNo: `fund-${userId}`, userId, amount, currency: 'CNY' });
  if (res.statusCode !== 201) throw new Error(JSON.stringify(res.json));
  await l.waitFor('grant projected', async () => { const w = await wallet(l, userId); return w.pending + w.available === amount; });
  await l.rt.publisher.publish('TokenCredited', creditFor({ tokenId: res.json.tokenId, activityId: act, traceId: 't', userId, amount, currency: 'CNY' }, Date.now()));
  await l.waitFor(`${userId} funded`, async () => (await wallet(l, userId)).available === amount);
}
