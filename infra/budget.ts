import type { Redis } from 'ioredis';

/**
 * The activity cash budget as an atomic counter shared by every API instance, and the
 * order-number memory that makes grants idempotent. Both live in one Lua script so that
 * "is this order new?" and "is there budget left?" are decided together: a retry never
 * reserves twice and concurrent grants never reserve past the funded amount.
 *
 * Keys carry a hash tag per activity, so on Redis Cluster one script's keys share a slot.
 *
 * Budget is only ever added here after its BudgetFunded event is acknowledged by Kafka,
 * so Redis can lag the ledger (safe: grants refused) but never lead it (over-issue).
 */
const GRANT_SCRIPT = `
local existing = redis.call('GET', KEYS[2])
if existing then return {'EXISTING', existing} end
local amount = tonumber(ARGV[1])
local funded = tonumber(redis.call('HGET', KEYS[1], 'funded') or '0')
local reserved = tonumber(redis.call('HGET', KEYS[1], 'reserved') or '0')
if reserved + amount > funded then return {'EXHAUSTED', tostring(funded - reserved)} end
redis.call('HINCRBY', KEYS[1], 'reserved', amount)
local record = ARGV[2] .. '|' .. ARGV[3]
redis.call('SET', KEYS[2], record, 'EX', tonumber(ARGV[4]))
return {'RESERVED', record}
`;

// Fixes the amount of a funding id before anything is published, so every BudgetFunded
// event for that id, and the amount later added to the counter, are the same amount.
const CLAIM_FUNDING_SCRIPT = `
if redis.call('SET', KEYS[1], ARGV[1], 'NX') then return 'claimed' end
if redis.call('GET', KEYS[1]) == ARGV[1] then return 'same' end
return 'conflict'
`;

const FUND_SCRIPT = `
if redis.call('SET', KEYS[2], ARGV[1], 'NX') then
  redis.call('HINCRBY', KEYS[1], 'funded', tonumber(ARGV[1]))
  return 1
end
return 0
`;

export type Reservation =
  | { outcome: 'reserved'; fingerprint: string; issuedAt: number }
  | { outcome: 'existing'; fingerprint: string; issuedAt: number }
  | { outcome: 'exhausted'; remaining: number };

type ScriptedRedis = Redis & {
  hbReserve(budgetKey: string, orderKey: string, amount: string, fingerprint: string, now: string, ttl: string): Promise<[string, string]>;
  hbFund(budgetKey: string, fundingKey: string, amount: string): Promise<number>;
  hbClaimFunding(claimKey: string, amount: string): Promise<'claimed' | 'same' | 'conflict'>;
};

export class BudgetStore {
  private readonly redis: ScriptedRedis;

  constructor(
    redis: Redis,
    private readonly prefix: string,
    private readonly orderRetentionSec: number,
  ) {
    // defineCommand sends scripts by SHA (EVALSHA), not their text, on every call.
    if (!('hbReserve' in redis)) {
      redis.defineCommand('hbReserve', { numberOfKeys: 2, lua: GRANT_SCRIPT });
      redis.defineCommand('hbFund', { numberOfKeys: 2, lua: FUND_SCRIPT });
      redis.defineCommand('hbClaimFunding', { numberOfKeys: 1, lua: CLAIM_FUNDING_SCRIPT });
    }
    this.redis = redis as ScriptedRedis;
  }

  private budgetKey(activityId: string): string {
    return `${this.prefix}:{act:${activityId}}:budget`;
  }

  /** Reserves `amount` for an order, or returns what the first request with this order number recorded. */
  async reserve(activityId: string, orderNo: string, amount: number, fingerprint: string, now: number): Promise<Reservation> {
    const [status, value] = await this.redis.hbReserve(
      this.budgetKey(activityId), `${this.prefix}:{act:${activityId}}:order:${orderNo}`,
      String(amount), fingerprint, String(now), String(this.orderRetentionSec),
    );
    if (status === 'EXHAUSTED') return { outcome: 'exhausted', remaining: Number(value) };
    const sep = value.lastIndexOf('|');
    const record = { fingerprint: value.slice(0, sep), issuedAt: Number(value.slice(sep + 1)) };
    return status === 'RESERVED' ? { outcome: 'reserved', ...record } : { outcome: 'existing', ...record };
  }

  /**
   * Step one of funding, before its event is produced: binds the funding id to its amount.
   * A retry with the same amount may proceed; another amount under the same id may not.
   */
  async claimFunding(activityId: string, fundingId: string, amount: number): Promise<'claimed' | 'same' | 'conflict'> {
    return this.redis.hbClaimFunding(`${this.prefix}:{act:${activityId}}:funding-claim:${fundingId}`, String(amount));
  }

  /** Step two, after Kafka acknowledged the event: adds a funding once per fundingId. Returns false when this funding was already added. */
  async fund(activityId: string, fundingId: string, amount: number): Promise<boolean> {
    const res = await this.redis.hbFund(this.budgetKey(activityId), `${this.prefix}:{act:${activityId}}:funding:${fundingId}`, String(amount));
    return res === 1;
  }

  async snapshot(activityId: string): Promise<{ funded: number; reserved: number }> {
    const h = await this.redis.hgetall(this.budgetKey(activityId));
    return { funded: Number(h.funded ?? 0), reserved: Number(h.reserved ?? 0) };
  }
}
