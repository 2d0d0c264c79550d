import type { Redis } from 'ioredis';
import type { Currency } from '../domain/money.ts';

/**
 * The live state of red packets in Redis: the shares still to hand out, who grabbed which,
 * and whether the packet is closed. Every decision is one Lua script, so "has this user
 * grabbed?", "is it expired or closed?" and "take the next share" happen together: each user
 * at most once, and exactly `count` grabs succeed however many race.
 *
 * The ledger, not Redis, is the record: a grab is only money once its PacketClaimed is in the
 * log, and the fold refuses any claim the split does not allow. A grab whose claim has not
 * been written yet is listed in `unsent` until it has (a crash in between is found there).
 *
 * Keys carry a hash tag per packet; the `unsent` index is one key per namespace, so on Redis
 * Cluster it would have to be sharded by packet (noted, not needed on one node).
 */
const INIT_SCRIPT = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'sender', ARGV[1], 'expiresAt', ARGV[2], 'currency', ARGV[3], 'count', ARGV[4], 'closed', ARGV[6], 'rest', ARGV[7], 'restored', ARGV[8])
local n = tonumber(ARGV[9])
local i = 10
-- In slices: unpack has a limit on how many values it returns at once.
for from = i, i + n - 1, 1000 do
  redis.call('RPUSH', KEYS[2], unpack(ARGV, from, math.min(from + 999, i + n - 1)))
end
i = i + n
while i < #ARGV do
  redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1])
  i = i + 2
end
for k = 1, 3 do redis.call('PEXPIREAT', KEYS[k], ARGV[5]) end
return 1
`;

const GRAB_SCRIPT = `
if redis.call('EXISTS', KEYS[1]) == 0 then return {'MISSING'} end
local sender = redis.call('HGET', KEYS[1], 'sender')
local mine = redis.call('HGET', KEYS[3], ARGV[1])
if mine then
  local unsent = redis.call('ZSCORE', KEYS[4], ARGV[3] .. '|' .. ARGV[1])
  return {'ALREADY', mine, sender, redis.call('HGET', KEYS[1], 'currency'), unsent and '1' or '0'}
end
if redis.call('HGET', KEYS[1], 'closed') == '1' then return {'CLOSED'} end
if tonumber(ARGV[2]) >= tonumber(redis.call('HGET', KEYS[1], 'expiresAt')) then return {'EXPIRED'} end
local share = redis.call('LPOP', KEYS[2])
if not share then return {'EMPTY', redis.call('HGET', KEYS[1], 'count')} end
local claim = share .. '|' .. ARGV[2]
redis.call('HSET', KEYS[3], ARGV[1], claim)
redis.call('ZADD', KEYS[4], ARGV[2], ARGV[3] .. '|' .. ARGV[1])
return {'CLAIMED', claim, sender, redis.call('HGET', KEYS[1], 'currency')}
`;

// Closing at expiry: no grab succeeds after it, and what is left is fixed once, so every
// refunder (racing, or rerun after a crash) refunds the same amount.
const CLOSE_SCRIPT = `
if redis.call('EXISTS', KEYS[1]) == 0 then return {'MISSING'} end
if redis.call('HGET', KEYS[1], 'closed') == '1' then return {'CLOSED', redis.call('HGET', KEYS[1], 'rest')} end
if tonumber(ARGV[1]) < tonumber(redis.call('HGET', KEYS[1], 'expiresAt')) then return {'OPEN'} end
local rest = 0
for _, s in ipairs(redis.call('LRANGE', KEYS[2], 0, -1)) do
  rest = rest + tonumber(string.sub(s, string.find(s, '|', 1, true) + 1))
end
redis.call('HSET', KEYS[1], 'closed', '1', 'rest', tostring(rest))
redis.call('DEL', KEYS[2])
return {'CLOSED', tostring(rest)}
`;

// A grab Redis answered with a share the journal had given to someone else (Redis had lost
// the packet and restored it before that claim was in the log): this user gives it up.
const DISOWN_SCRIPT = `
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then redis.call('HDEL', KEYS[1], ARGV[1]) end
redis.call('ZREM', KEYS[2], ARGV[3] .. '|' .. ARGV[1])
return 1
`;

// The journal accepted (or already had) this user's claim of a share: Redis records it, takes
// the share out of the unclaimed list (a restore may have put it back before the claim was in
// the log), and gives back the share it had just handed this user if the journal says the
// user holds another one. Then the close's rest is exactly what no claim holds.
// Only a restored packet can have the share back in its list: LREM scans the whole list, and
// a hot packet's holds up to 100,000 shares (it made each grab's settle cost milliseconds).
const SETTLE_SCRIPT = `
if redis.call('HGET', KEYS[1], 'restored') == '1' then redis.call('LREM', KEYS[2], 0, ARGV[3]) end
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
if ARGV[4] ~= '' and redis.call('HGET', KEYS[1], 'closed') ~= '1' then
  redis.call('RPUSH', KEYS[2], ARGV[4])
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
end
redis.call('ZREM', KEYS[4], ARGV[5] .. '|' .. ARGV[1])
return 1
`;

export interface GrabbedShare {
  seq: number;
  amount: number;
  claimedAt: number;
}

export type GrabOutcome =
  | { outcome: 'claimed'; share: GrabbedShare; senderId: string; currency: Currency }
  /** This user grabbed before; `unsent` when its claim may not be in the log yet. */
  | { outcome: 'already'; share: GrabbedShare; senderId: string; currency: Currency; unsent: boolean }
  | { outcome: 'empty'; count: number }
  | { outcome: 'expired' }
  | { outcome: 'closed' }
  | { outcome: 'missing' };

export interface PacketState {
  packetId: string;
  senderId: string;
  currency: Currency;
  count: number;
  expiresAt: number;
  /** Shares not yet grabbed, by seq. */
  remaining: { seq: number; amount: number }[];
  claims: { userId: string; share: GrabbedShare }[];
  closed: boolean;
  rest: number;
  /**
   * Rebuilt from the ledger after Redis lost it: a grab decided before the loss, whose claim
   * was not in the log yet, may find its share back in the list (the settle takes it out).
   */
  restored?: boolean;
}

type ScriptedRedis = Redis & {
  hbPacketInit(meta: string, shares: string, claims: string, ...args: string[]): Promise<number>;
  hbPacketGrab(meta: string, shares: string, claims: string, unsent: string, userId: string, now: string, packetId: string): Promise<string[]>;
  hbPacketClose(meta: string, shares: string, now: string): Promise<string[]>;
  hbPacketDisown(claims: string, unsent: string, userId: string, share: string, packetId: string): Promise<number>;
  hbPacketSettle(meta: string, shares: string, claims: string, unsent: string, userId: string, share: string, listed: string, putBack: string, packetId: string): Promise<number>;
};

const shareRecord = (s: GrabbedShare) => `${s.seq}|${s.amount}|${s.claimedAt}`;

const parseShare = (v: string): GrabbedShare => {
  const [seq, amount, at] = v.split('|');
  return { seq: Number(seq), amount: Number(amount), claimedAt: Number(at) };
};

/** How long a packet's grab state outlives its expiry: a late retry still learns what it got. */
const KEEP_AFTER_EXPIRY_MS = 7 * 86_400_000;

export class PacketGrabs {
  private readonly redis: ScriptedRedis;

  constructor(redis: Redis, private readonly prefix: string) {
    if (!('hbPacketGrab' in redis)) {
      redis.defineCommand('hbPacketInit', { numberOfKeys: 3, lua: INIT_SCRIPT });
      redis.defineCommand('hbPacketGrab', { numberOfKeys: 4, lua: GRAB_SCRIPT });
      redis.defineCommand('hbPacketClose', { numberOfKeys: 2, lua: CLOSE_SCRIPT });
      redis.defineCommand('hbPacketDisown', { numberOfKeys: 2, lua: DISOWN_SCRIPT });
      redis.defineCommand('hbPacketSettle', { numberOfKeys: 4, lua: SETTLE_SCRIPT });
    }
    this.redis = redis as ScriptedRedis;
  }

  private keys(packetId: string) {
    const base = `${this.prefix}:{pk:${packetId}}`;
    return { meta: `${base}:meta`, shares: `${base}:shares`, claims: `${base}:claims` };
  }

  private get unsentKey(): string {
    return `${this.prefix}:pk:unsent`;
  }

  /** Puts a packet's state in Redis unless it is there already (a packet is loaded once). */
  async init(s: PacketState): Promise<boolean> {
    const k = this.keys(s.packetId);
    const args = [
      // A packet restored long after its expiry still gets a day, or its keys would vanish at once.
      s.senderId, String(s.expiresAt), s.currency, String(s.count), String(Math.max(s.expiresAt + KEEP_AFTER_EXPIRY_MS, Date.now() + 86_400_000)),
      s.closed ? '1' : '0', String(s.rest), s.restored ? '1' : '0',
      String(s.remaining.length), ...s.remaining.map((r) => `${r.seq}|${r.amount}`),
      ...s.claims.flatMap((c) => [c.userId, shareRecord(c.share)]),
    ];
    return (await this.redis.hbPacketInit(k.meta, k.shares, k.claims, ...args)) === 1;
  }

  async grab(packetId: string, userId: string, now: number): Promise<GrabOutcome> {
    const k = this.keys(packetId);
    const [status, value, sender, currency, unsent] = await this.redis.hbPacketGrab(k.meta, k.shares, k.claims, this.unsentKey, userId, String(now), packetId);
    switch (status) {
      case 'CLAIMED': return { outcome: 'claimed', share: parseShare(value!), senderId: sender!, currency: currency as Currency };
      case 'ALREADY': return { outcome: 'already', share: parseShare(value!), senderId: sender!, currency: currency as Currency, unsent: unsent === '1' };
      case 'EMPTY': return { outcome: 'empty', count: Number(value) };
      case 'EXPIRED': return { outcome: 'expired' };
      case 'CLOSED': return { outcome: 'closed' };
      default: return { outcome: 'missing' };
    }
  }

  /** Closes an expired packet; the unclaimed rest, or 'open' before expiry, or 'missing'. */
  async close(packetId: string, now: number): Promise<{ rest: number } | 'open' | 'missing'> {
    const k = this.keys(packetId);
    const [status, rest] = await this.redis.hbPacketClose(k.meta, k.shares, String(now));
    if (status === 'CLOSED') return { rest: Number(rest) };
    return status === 'OPEN' ? 'open' : 'missing';
  }

  /** Everyone who grabbed, with their shares. */
  async claims(packetId: string): Promise<{ userId: string; share: GrabbedShare }[]> {
    const all = await this.redis.hgetall(this.keys(packetId).claims);
    return Object.entries(all).map(([userId, v]) => ({ userId, share: parseShare(v) }));
  }

  async senderOf(packetId: string): Promise<{ senderId: string; currency: Currency } | null> {
    const [senderId, currency] = await this.redis.hmget(this.keys(packetId).meta, 'sender', 'currency');
    return senderId ? { senderId, currency: currency as Currency } : null;
  }

  /**
   * Records in Redis the share the journal says this user holds (the journal is the record),
   * takes it out of the unclaimed shares, and puts back `handedOut` (the share this grab had
   * just taken) when the journal says the user holds another one. Confirms the claim journaled.
   */
  async settle(packetId: string, userId: string, held: GrabbedShare, handedOut: GrabbedShare): Promise<void> {
    const k = this.keys(packetId);
    const putBack = handedOut.seq === held.seq ? '' : `${handedOut.seq}|${handedOut.amount}`;
    await this.redis.hbPacketSettle(k.meta, k.shares, k.claims, this.unsentKey, userId, shareRecord(held), `${held.seq}|${held.amount}`, putBack, packetId);
  }

  /** This user does not have `share` after all (the journal gave it to another grabber). */
  async disown(packetId: string, userId: string, share: GrabbedShare): Promise<void> {
    await this.redis.hbPacketDisown(this.keys(packetId).claims, this.unsentKey, userId, shareRecord(share), packetId);
  }

  /** The claim of this grab is journaled (so it will be in the log). */
  async sent(packetId: string, userId: string): Promise<void> {
    await this.redis.zrem(this.unsentKey, `${packetId}|${userId}`);
  }

  /** Grabs made before `before` whose claims were not confirmed written. */
  async unsent(before: number, limit: number): Promise<{ packetId: string; userId: string }[]> {
    const members = await this.redis.zrangebyscore(this.unsentKey, '-inf', String(before), 'LIMIT', 0, limit);
    return members.map((m) => {
      const i = m.indexOf('|');
      return { packetId: m.slice(0, i), userId: m.slice(i + 1) };
    });
  }

  async share(packetId: string, userId: string): Promise<GrabbedShare | null> {
    const v = await this.redis.hget(this.keys(packetId).claims, userId);
    return v === null ? null : parseShare(v);
  }
}
