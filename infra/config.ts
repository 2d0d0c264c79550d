import { availableParallelism } from 'node:os';
/**
 * All configuration comes from the environment, with local defaults, so production points
 * at real clusters by changing env vars only.
 */
export interface Config {
  kafkaBrokers: string[];
  schemaRegistryUrl: string;
  databaseUrl: string;
  redisUrl: string;
  /**
   * Isolates one ledger from another on shared infrastructure: topic prefix, Postgres
   * schema and Redis key prefix. Load tests and test runs use their own namespace so
   * they never mix with real money.
   */
  namespace: string;
  partitions: number;
  replicationFactor: number;
  apiHost: string;
  apiPort: number;
  /** Ed25519 private key (PKCS#8 PEM) for grant tokens, and its id. */
  tokenSigningKeyPem: string | undefined;
  tokenKeyId: string;
  /** Max credits per second across all crediting instances: the account system's capacity. */
  creditRatePerSec: number;
  /** How long the producer waits to fill a batch, ms. */
  produceLingerMs: number;
  adminToken: string | undefined;
  /** How long an order number is remembered for idempotency. */
  orderRetentionSec: number;
  /** The payment provider's base URL, and the key we call it with. */
  providerUrl: string;
  providerApiKey: string | undefined;
  /** Max payout calls per second across all payout instances: the provider's capacity. */
  payoutRatePerSec: number;
  /** Backoff for re-produced payout attempts: base, doubling per attempt, capped. */
  payoutRetryBaseMs: number;
  payoutRetryCapMs: number;
  /** Consecutive failed payout calls that open the breaker, and how long it stays open. */
  breakerFailureThreshold: number;
  breakerOpenMs: number;
  /** Where `npm start` runs the payment-provider simulator. */
  providerPort: number;
  /** How old a balance on the wallet page may be, ms (a per-instance read cache; 0 disables it). */
  walletCacheMs: number;
  /** Continuous reconciliation: how often a window is checked, how far behind now it ends, the report period. */
  reconcileIntervalMs: number;
  reconcileBehindMs: number;
  reconcileReportPeriodMs: number;
  /** How long a token may stay uncredited, and a payout unanswered, before reconciliation calls it a difference. */
  reconcileCreditGraceMs: number;
  reconcilePayoutGraceMs: number;
  /** Where the reconciler serves /metrics and /health. */
  reconcilerPort: number;
  /** Worker threads a whole-log audit folds the log's partitions in (one: in the audit's own thread). */
  reconcileWorkers: number;
  /** Red packets: most shares, largest total (fen), and the allowed expiry range (the default is the longest). */
  packetMaxCount: number;
  packetMaxAmount: number;
  packetMinExpiryMs: number;
  packetMaxExpiryMs: number;
  /** How often the packet keeper refunds expired packets and re-sends claims a crashed grab left unsent. */
  packetKeeperIntervalMs: number;
  /** How old a grab must be before the keeper takes its claim as unsent. */
  packetClaimSweepMs: number;
  /** How often each instance looks for a new campaign configuration version. */
  campaignPollMs: number;
  /** How long a draw id is remembered in Redis (a retry within it gets the same draw; the ledger dedupes it for ever). */
  drawRetentionSec: number;
  /** Before rebuilding lost prize counters: how long draws already in flight may take to reach Kafka. */
  drawRestoreGraceMs: number;
  /** How long a draw waits for another instance's rebuild before answering 503. */
  drawRestoreWaitMs: number;
  /** Coupons: low-stock signal below this percentage left (Douyin used 10). */
  couponLowStockPercent: number;
  /** A new template's stock is split into this many rows, so concurrent grants need not queue on one. */
  couponStockBuckets: number;
  /** A freeze holds a coupon this long unless the payment asks less; at most the max. */
  couponHoldDefaultMs: number;
  couponHoldMaxMs: number;
  /** The coupon keeper's round: timed-out holds unfrozen. */
  couponKeeperIntervalMs: number;
  /** The wallet's coupon list answers from its last cached view when the projection is slower than this. */
  couponQueryTimeoutMs: number;
  couponViewCacheSec: number;
  /** The command journal: how many relay shards (fixed for a namespace: a key's events keep their order within its shard), how often an idle relay looks for work, the most commands one group commit carries. */
  journalShards: number;
  journalPollMs: number;
  journalBatch: number;
  /**
   * Group commits in flight at once. One by default: a festival's commands mostly spend one
   * hot budget, whose row each batch locks until it commits, so a second batch in flight only
   * waits for the first and halves both (docs/benchmarks.md measured 1 against 2 and 4).
   */
  journalInFlight: number;
}

function int(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${name} must be a non-negative integer, got "${raw}"`);
  return n;
}

export function loadConfig(overrides: Partial<Config> = {}): Config {
  const env = process.env;
  const namespace = overrides.namespace ?? env.LEDGER_NAMESPACE ?? 'hongbao';
  if (!/^[a-z][a-z0-9_]{0,40}$/.test(namespace)) throw new Error(`LEDGER_NAMESPACE must match [a-z][a-z0-9_]*, got "${namespace}"`);
  return {
    kafkaBrokers: (env.KAFKA_BROKERS ?? '127.0.0.1:9092').split(',').map((s) => s.trim()).filter(Boolean),
    schemaRegistryUrl: env.SCHEMA_REGISTRY_URL ?? 'http://127.0.0.1:8081/apis/ccompat/v7',
    databaseUrl: env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/hongbao',
    redisUrl: env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    partitions: int('KAFKA_PARTITIONS', 4),
    replicationFactor: int('KAFKA_REPLICATION_FACTOR', 1),
    apiHost: env.API_HOST ?? '127.0.0.1',
    apiPort: int('API_PORT', 3000),
    tokenSigningKeyPem: env.TOKEN_SIGNING_KEY,
    tokenKeyId: env.TOKEN_KEY_ID ?? 'dev-1',
    creditRatePerSec: int('CREDIT_RATE_PER_SEC', 300_000),
    produceLingerMs: int('PRODUCE_LINGER_MS', 2),
    adminToken: env.ADMIN_TOKEN,
    orderRetentionSec: int('ORDER_RETENTION_SEC', 60 * 60 * 24 * 60),
    providerUrl: env.PROVIDER_URL ?? `http://127.0.0.1:${int('PROVIDER_PORT', 4000)}`,
    providerApiKey: env.PROVIDER_API_KEY,
    payoutRatePerSec: int('PAYOUT_RATE_PER_SEC', 1000),
    payoutRetryBaseMs: int('PAYOUT_RETRY_BASE_MS', 250),
    payoutRetryCapMs: int('PAYOUT_RETRY_CAP_MS', 15_000),
    breakerFailureThreshold: int('BREAKER_FAILURE_THRESHOLD', 5),
    breakerOpenMs: int('BREAKER_OPEN_MS', 2_000),
    providerPort: int('PROVIDER_PORT', 4000),
    walletCacheMs: int('WALLET_CACHE_MS', 1000),
    reconcileIntervalMs: int('RECONCILE_INTERVAL_SEC', 60) * 1000,
    reconcileBehindMs: int('RECONCILE_BEHIND_SEC', 300) * 1000,
    reconcileReportPeriodMs: int('RECONCILE_REPORT_PERIOD_SEC', 3600) * 1000,
    reconcileCreditGraceMs: int('RECONCILE_CREDIT_GRACE_SEC', 300) * 1000,
    reconcilePayoutGraceMs: int('RECONCILE_PAYOUT_GRACE_SEC', 300) * 1000,
    reconcilerPort: int('RECONCILER_PORT', 3300),
    reconcileWorkers: int('RECONCILE_WORKERS', Math.min(4, availableParallelism())),
    packetMaxCount: int('PACKET_MAX_COUNT', 100),
    packetMaxAmount: int('PACKET_MAX_AMOUNT', 20_000),
    packetMinExpiryMs: int('PACKET_MIN_EXPIRY_SEC', 60) * 1000,
    packetMaxExpiryMs: int('PACKET_MAX_EXPIRY_SEC', 86_400) * 1000,
    packetKeeperIntervalMs: int('PACKET_KEEPER_INTERVAL_SEC', 5) * 1000,
    packetClaimSweepMs: int('PACKET_CLAIM_SWEEP_SEC', 10) * 1000,
    campaignPollMs: int('CAMPAIGN_POLL_MS', 2000),
    drawRetentionSec: int('DRAW_RETENTION_SEC', 86_400),
    drawRestoreGraceMs: int('DRAW_RESTORE_GRACE_MS', 3000),
    drawRestoreWaitMs: int('DRAW_RESTORE_WAIT_MS', 15_000),
    couponLowStockPercent: int('COUPON_LOW_STOCK_PERCENT', 10),
    couponStockBuckets: int('COUPON_STOCK_BUCKETS', 16),
    couponHoldDefaultMs: int('COUPON_HOLD_SEC', 900) * 1000,
    couponHoldMaxMs: int('COUPON_HOLD_MAX_SEC', 3600) * 1000,
    couponKeeperIntervalMs: int('COUPON_KEEPER_INTERVAL_MS', 1000),
    couponQueryTimeoutMs: int('COUPON_QUERY_TIMEOUT_MS', 300),
    couponViewCacheSec: int('COUPON_VIEW_CACHE_SEC', 86_400),
    journalShards: int('JOURNAL_SHARDS', 16),
    journalPollMs: int('JOURNAL_POLL_MS', 100),
    journalBatch: int('JOURNAL_BATCH', 200),
    journalInFlight: int('JOURNAL_IN_FLIGHT', 1),
    ...overrides,
    namespace,
  };
}

export interface Topics {
  wallet: string;
  budget: string;
  /** Payout attempts that failed transiently, re-produced to be tried again. */
  payouts: string;
  deadLetter: string;
}

/**
 * Topic names and their keys: wallet events keyed by userId, budget events by activityId,
 * payout retries by withdrawalId.
 */
export function topicsOf(namespace: string): Topics {
  return {
    wallet: `${namespace}.wallet.v1`,
    budget: `${namespace}.budget.v1`,
    payouts: `${namespace}.payouts.v1`,
    deadLetter: `${namespace}.deadletter.v1`,
  };
}
