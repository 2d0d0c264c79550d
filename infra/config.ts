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
    ...overrides,
    namespace,
  };
}

export interface Topics {
  wallet: string;
  budget: string;
  deadLetter: string;
}

/** Topic names and their keys: wallet events keyed by userId, budget events by activityId. */
export function topicsOf(namespace: string): Topics {
  return {
    wallet: `${namespace}.wallet.v1`,
    budget: `${namespace}.budget.v1`,
    deadLetter: `${namespace}.deadletter.v1`,
  };
}
