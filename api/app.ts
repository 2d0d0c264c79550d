import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { frameworkErrors, installErrorHandling } from './errors.ts';
import { installInputRules, requestIdOf } from './input.ts';
import { upstreamAuth } from './auth/upstream-plugin.ts';
import { grantRoutes } from './grants/routes.ts';
import { GrantService } from './grants/service.ts';
import { walletRoutes } from './wallets/routes.ts';
import { WalletReader } from './wallets/reader.ts';
import { WithdrawalService } from './wallets/withdrawal-service.ts';
import { userAuth } from './auth/user-plugin.ts';
import { WalletSettingsStore } from '../infra/wallet-settings.ts';
import { ProjectionFence } from '../infra/projection-fence.ts';
import { checkInvariants } from '../projections/invariants.ts';
import type { KeyObject } from 'node:crypto';
import { adminRoutes } from './admin/routes.ts';
import { ActivityCatalog } from '../infra/activities.ts';
import { BudgetStore } from '../infra/budget.ts';
import { journalFor, relayFor } from '../infra/journal.ts';
import { KafkaNotConnected } from '../infra/kafka-common.ts';
import { tokenSigner } from '../domain/tokens.ts';
import type { Runtime } from '../infra/runtime.ts';
import { packetRoutes } from './packets/routes.ts';
import { PacketService } from './packets/service.ts';
import { PacketGrabs } from '../infra/packet-grabs.ts';
import { PacketReader, PacketRestorer } from '../projections/packet-reader.ts';
import type { PacketTerms } from '../domain/packets.ts';
import type { Config } from '../infra/config.ts';
import { CampaignCatalog, CampaignStore } from '../infra/campaign-store.ts';
import { DrawQuotas } from '../infra/draw-quotas.ts';
import { DrawService } from './draws/service.ts';
import { drawRoutes } from './draws/routes.ts';
import { consumptionOf } from '../projections/draw-reader.ts';
import { CouponCommands } from '../infra/coupon-store.ts';
import { CouponCatalog } from '../infra/coupon-catalog.ts';
import { CouponReader } from '../projections/coupon-reader.ts';
import { couponRoutes } from './coupons/routes.ts';
import { walletCouponRoutes } from './coupons/wallet-routes.ts';

export interface AppSecrets {
  tokenSigningKeyPem: string;
  adminToken: string;
  upstreamKeys: ReadonlyMap<string, string>;
  /** Public keys (by key id) that user tokens are verified with. */
  userTokenKeys: ReadonlyMap<string, KeyObject>;
}

export const BODY_LIMIT = 16 * 1024;

/** The HTTP API: each route group is its own plugin with its schemas beside it. */
export interface AppOptions {
  /** Draw clock and randomness: tests pin them; production uses the wall clock and crypto. */
  drawClock?: () => number;
  drawRandom?: () => number;
  /** Coupon decisions' clock (tests pin it to reach hold timeouts). */
  couponClock?: () => number;
}

export async function buildApp(rt: Runtime, secrets: AppSecrets, opts: AppOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    // The process's own logger: a failed request's lines carry its id. Per-request lines are off (the hot path).
    loggerInstance: rt.log.pino as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: BODY_LIMIT,
    requestIdHeader: false,
    genReqId: requestIdOf,
    trustProxy: false,
    frameworkErrors,
  });
  installErrorHandling(app);
  installInputRules(app);

  const activities = new ActivityCatalog(rt.pool);
  const budget = new BudgetStore(rt.pool);
  const journal = journalFor(rt);
  // Every API instance relays the journal; instances share its shards (infra/journal.ts).
  // It starts once Kafka's side is connected (at once, unless the API started during a Kafka
  // or registry outage): the journal keeps what is accepted meanwhile.
  const relay = relayFor(rt, journal);
  let closed = false;
  void rt.kafkaLink.ready.then(() => { if (!closed) relay.start(); });
  app.addHook('onClose', () => { closed = true; return relay.stop(); });
  const signer = tokenSigner(secrets.tokenSigningKeyPem, rt.cfg.tokenKeyId);
  const grants = new GrantService({ activities, journal, signer });
  const settings = new WalletSettingsStore(rt.pool);
  const fence = new ProjectionFence(rt);
  app.addHook('onClose', () => fence.close());

  const campaignStore = new CampaignStore(rt.pool);
  const catalog = new CampaignCatalog(campaignStore, rt.cfg.campaignPollMs, (err) => rt.log.warn('campaign configuration poll failed', { err }));
  await catalog.start();
  app.addHook('onClose', async () => catalog.stop());
  const coupons = new CouponCommands({ pool: rt.pool, journal, lowStockPercent: rt.cfg.couponLowStockPercent, now: opts.couponClock });
  const couponReader = new CouponReader(rt.pool, rt.redis, { namespace: rt.cfg.namespace, timeoutMs: rt.cfg.couponQueryTimeoutMs, cacheSec: rt.cfg.couponViewCacheSec });
  const couponCatalog = new CouponCatalog(rt.pool, rt.cfg.couponStockBuckets);
  const draws = new DrawService({
    catalog, store: campaignStore, quotas: new DrawQuotas(rt.redis, rt.cfg.namespace, rt.cfg.drawRetentionSec), journal, grants, coupons,
    settle: async () => {
      // Rebuilding needs the journal produced and the log's end offsets: not before Kafka is connected.
      if (!rt.kafkaLink.connected) throw new KafkaNotConnected('the prize counters\' rebuild');
      await new Promise((r) => setTimeout(r, rt.cfg.drawRestoreGraceMs));
      // Wins the journal accepted must be in the log before the projection is read.
      const settledAt = Date.now();
      const upTo = await journal.position();
      while (!(await journal.producedUpTo(upTo))) {
        if (Date.now() - settledAt > rt.cfg.drawRestoreWaitMs) throw new Error('the command journal is not draining');
        await new Promise((r) => setTimeout(r, 50));
      }
      await fence.catchUpAll(Date.now() + rt.cfg.drawRestoreWaitMs);
    },
    consumption: (activityId, childId) => consumptionOf(rt.pool, activityId, childId),
    restoreWaitMs: rt.cfg.drawRestoreWaitMs + rt.cfg.drawRestoreGraceMs, now: opts.drawClock, random: opts.drawRandom,
  });


  await app.register(upstreamAuth, { keys: secrets.upstreamKeys, redis: rt.redis, noncePrefix: rt.cfg.namespace });
  await app.register(async (upstream) => {
    upstream.addHook('onRoute', (route) => {
      route.config = { ...(route.config ?? {}), upstreamAuth: true };
    });
    await upstream.register(grantRoutes, { grants });
    await upstream.register(drawRoutes, { draws });
    await upstream.register(couponRoutes, { commands: coupons, activities, holdDefaultMs: rt.cfg.couponHoldDefaultMs, holdMaxMs: rt.cfg.couponHoldMaxMs });
  });
  const wallets = new WalletReader(rt.pool, rt.cfg.walletCacheMs);
  const withdrawals = new WithdrawalService({ pool: rt.pool, publisher: rt.publisher, journal, settings, fence, reader: wallets, kafkaConnected: () => rt.kafkaLink.connected });
  await app.register(userAuth, { keys: secrets.userTokenKeys });
  await app.register(walletRoutes, { wallets, withdrawals });
  await app.register(walletCouponRoutes, { commands: coupons, reader: couponReader });
  const grabs = new PacketGrabs(rt.redis, rt.cfg.namespace);
  const packetReader = new PacketReader(rt.pool);
  const packets = new PacketService({
    pool: rt.pool, journal, grabs, restorer: new PacketRestorer(packetReader, grabs, fence, journal), terms: packetTerms(rt.cfg), log: rt.log,
  });
  await app.register(packetRoutes, { packets, reader: packetReader, grabs });
  await app.register(adminRoutes, {
    adminToken: secrets.adminToken, activities, budget, journal, settings,
    invariants: () => checkInvariants(rt.pool, { budgetLag: () => fence.lag(rt.topics.budget) }), pool: rt.pool,
    campaigns: { store: campaignStore, catalog, knownPacks: (ids) => couponCatalog.knownPacks(ids) },
    coupons: { catalog: couponCatalog, reader: couponReader },
  });

  // Liveness and readiness to serve: `status` is about what every request needs (Postgres,
  // Redis). Kafka is reported beside it and does not make the instance unready: accepted
  // commands wait in the journal until `kafka.connected` and the relay `running`.
  app.get('/health', async () => {
    const checks = await Promise.allSettled([rt.pool.query('select 1'), rt.redis.ping()]);
    const [pgOk, redisOk] = checks.map((c) => c.status === 'fulfilled');
    const link = rt.kafkaLink.status();
    return {
      status: pgOk && redisOk ? 'ok' : 'degraded', postgres: pgOk, redis: redisOk,
      kafka: { connected: link.connected, connectedAt: link.connectedAt, attempts: link.attempts, lastError: link.lastError, relay: relay.status() },
    };
  });
  return app;
}

export function packetTerms(cfg: Config): PacketTerms {
  return { currency: 'CNY', maxCount: cfg.packetMaxCount, maxAmount: cfg.packetMaxAmount, minExpiryMs: cfg.packetMinExpiryMs, maxExpiryMs: cfg.packetMaxExpiryMs };
}
