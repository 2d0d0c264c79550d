import type { Redis } from 'ioredis';
import { randomUUID } from 'node:crypto';
import { sliceOf, type Candidate } from '../domain/campaigns.ts';

/**
 * The shared, atomic part of a lottery draw: one Redis script per draw decides the draw id's
 * outcome once (D4), applies the user's rate limit and win limit (D3), and picks a prize by
 * weight among the candidates, taking a unit only while the prize is under its released quota
 * (D1) and under its cap for the current 100 ms slice (D2). A prize that cannot be issued
 * leaves the pool and the script picks again among the rest, until the pool is empty.
 *
 * Every key of a child activity carries one hash tag, so on Redis Cluster a script's keys
 * share a slot. The random numbers come from the caller, so a seeded caller is reproducible.
 *
 * Redis is the quota's authority while it holds the child's counters; a marker key says it
 * does. Without the marker (a new child, or Redis lost its data) draws answer UNLOADED and
 * the counters are rebuilt from the Postgres projection (restore) before any draw goes on.
 */
const DRAW_SCRIPT = `
if redis.call('EXISTS', KEYS[1]) == 0 then return {'UNLOADED'} end
local existing = redis.call('GET', KEYS[2])
if existing then return {'EXISTING', existing} end
local rateMax = tonumber(ARGV[5])
if rateMax > 0 then
  local used = redis.call('INCR', KEYS[3])
  if used == 1 then redis.call('PEXPIRE', KEYS[3], tonumber(ARGV[6])) end
  if used > rateMax then return {'RATE_LIMITED', tostring(redis.call('PTTL', KEYS[3]))} end
end
local user = ARGV[2]
local winLimit = tonumber(ARGV[7])
local outcome, prize, reason = 'no_win', '', 'pool_empty'
if winLimit >= 0 and tonumber(redis.call('HGET', KEYS[4], user) or '0') >= winLimit then
  reason = 'win_limit'
else
  local noWin = tonumber(ARGV[8])
  local n = tonumber(ARGV[9])
  local ids, weights, allow, caps = {}, {}, {}, {}
  local prizeTotal = 0
  for i = 1, n do
    local b = 9 + (i - 1) * 4
    ids[i] = ARGV[b + 1]
    weights[i] = tonumber(ARGV[b + 2])
    allow[i] = tonumber(ARGV[b + 3])
    caps[i] = tonumber(ARGV[b + 4])
    prizeTotal = prizeTotal + weights[i]
  end
  local r = 9 + n * 4
  for k = 1, n + 1 do
    if prizeTotal <= 0 then reason = 'pool_empty'; break end
    local x = tonumber(ARGV[r + k]) * (noWin + prizeTotal)
    if x < noWin then reason = 'no_win_drawn'; break end
    x = x - noWin
    local pick = nil
    for i = 1, n do
      if weights[i] > 0 then
        pick = i
        if x < weights[i] then break end
        x = x - weights[i]
      end
    end
    local id = ids[pick]
    local issued = tonumber(redis.call('HGET', KEYS[5], id) or '0')
    local inSlice = tonumber(redis.call('HGET', KEYS[6], id) or '0')
    if (allow[pick] < 0 or issued < allow[pick]) and (caps[pick] < 0 or inSlice < caps[pick]) then
      redis.call('HINCRBY', KEYS[5], id, 1)
      redis.call('HINCRBY', KEYS[6], id, 1)
      redis.call('PEXPIRE', KEYS[6], 5000)
      redis.call('HINCRBY', KEYS[4], user, 1)
      outcome, prize, reason = 'won', id, ''
      break
    end
    prizeTotal = prizeTotal - weights[pick]
    weights[pick] = 0
  end
end
local record = ARGV[1] .. '|' .. outcome .. '|' .. prize .. '|' .. reason .. '|' .. ARGV[3] .. '|' .. ARGV[10 + tonumber(ARGV[9]) * 4 + tonumber(ARGV[9]) + 1]
redis.call('SET', KEYS[2], record, 'EX', tonumber(ARGV[4]))
return {'DRAWN', record}
`;

// Gives back the unit a won draw took (its cash prize found no budget), so the draw can pick again.
const RELEASE_SCRIPT = `
local rec = redis.call('GET', KEYS[1])
if not rec then return 0 end
local _, _, outcome, prize, _, at = string.find(rec, '^[^|]*|([^|]*)|([^|]*)|([^|]*)|([^|]*)')
if outcome ~= 'won' or prize ~= ARGV[2] then return 0 end
redis.call('HINCRBY', KEYS[3], prize, -1)
redis.call('HINCRBY', KEYS[2], ARGV[1], -1)
if redis.call('EXISTS', KEYS[4]) == 1 then redis.call('HINCRBY', KEYS[4], prize, -1) end
redis.call('DEL', KEYS[1])
return 1
`;

// The last step of a restore: the marker goes up only if this restorer still holds the lock.
const OPEN_SCRIPT = `
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('DEL', KEYS[2])
return 1
`;

export interface DrawRecord {
  fingerprint: string;
  outcome: 'won' | 'no_win';
  prizeId: string;
  reason: string;
  at: number;
  configVersion: number;
}

export type DrawTake =
  | { status: 'unloaded' }
  | { status: 'rate_limited'; retryAfterMs: number }
  | { status: 'existing'; record: DrawRecord }
  | { status: 'drawn'; record: DrawRecord };

export interface DrawRequest {
  drawId: string;
  userId: string;
  sceneId: string;
  fingerprint: string;
  at: number;
  configVersion: number;
  rateLimit: { draws: number; perMs: number } | null;
  winLimit: number | null;
  noWinWeight: number;
  candidates: Candidate[];
  /** n + 1 numbers in [0, 1), n the number of candidates. */
  randoms: number[];
}

/** What the projection says a child activity has issued: per prize, and wins per user. */
export interface Consumption {
  issued: Map<string, number>;
  wins: Map<string, number>;
}

type ScriptedRedis = Redis & {
  hbDraw(...args: string[]): Promise<[string, string?]>;
  hbDrawRelease(...args: string[]): Promise<number>;
  hbDrawOpen(...args: string[]): Promise<number>;
};

function parseRecord(value: string): DrawRecord {
  const [fingerprint, outcome, prizeId, reason, at, version] = value.split('|');
  return { fingerprint: fingerprint!, outcome: outcome === 'won' ? 'won' : 'no_win', prizeId: prizeId!, reason: reason!, at: Number(at), configVersion: Number(version) };
}

export class DrawQuotas {
  private readonly redis: ScriptedRedis;

  constructor(redis: Redis, private readonly prefix: string, private readonly drawRetentionSec: number) {
    if (!('hbDraw' in redis)) {
      redis.defineCommand('hbDraw', { numberOfKeys: 6, lua: DRAW_SCRIPT });
      redis.defineCommand('hbDrawRelease', { numberOfKeys: 4, lua: RELEASE_SCRIPT });
      redis.defineCommand('hbDrawOpen', { numberOfKeys: 2, lua: OPEN_SCRIPT });
    }
    this.redis = redis as ScriptedRedis;
  }

  private tag(activityId: string, childId: string): string {
    return `${this.prefix}:{dr:${activityId}:${childId}}`;
  }

  private keys(activityId: string, childId: string) {
    const t = this.tag(activityId, childId);
    return {
      loaded: `${t}:loaded`, restoring: `${t}:restoring`, wins: `${t}:wins`, issued: `${t}:issued`,
      draw: (drawId: string) => `${t}:d:${drawId}`,
      rate: (sceneId: string, userId: string) => `${t}:r:${sceneId}:${userId}`,
      slice: (at: number) => `${t}:s:${sliceOf(at)}`,
    };
  }

  async draw(activityId: string, childId: string, req: DrawRequest): Promise<DrawTake> {
    const k = this.keys(activityId, childId);
    if (req.randoms.length !== req.candidates.length + 1) throw new Error('a draw needs one random number per candidate, and one more');
    const args = [
      k.loaded, k.draw(req.drawId), k.rate(req.sceneId, req.userId), k.wins, k.issued, k.slice(req.at),
      req.fingerprint, req.userId, String(req.at), String(this.drawRetentionSec),
      String(req.rateLimit?.draws ?? 0), String(req.rateLimit?.perMs ?? 0), String(req.winLimit ?? -1), String(req.noWinWeight), String(req.candidates.length),
    ];
    for (const c of req.candidates) args.push(c.prize.prizeId, String(c.prize.weight), String(c.allowance ?? -1), String(c.prize.maxPerSlice ?? -1));
    for (const r of req.randoms) args.push(String(r));
    args.push(String(req.configVersion));
    const [status, value] = await this.redis.hbDraw(...args);
    switch (status) {
      case 'UNLOADED':
        return { status: 'unloaded' };
      case 'RATE_LIMITED':
        return { status: 'rate_limited', retryAfterMs: Math.max(1, Number(value)) };
      case 'EXISTING':
        return { status: 'existing', record: parseRecord(value!) };
      default:
        return { status: 'drawn', record: parseRecord(value!) };
    }
  }

  /** Returns a won draw's unit to its prize and forgets the draw. False when the draw is not that win. */
  async release(activityId: string, childId: string, drawId: string, userId: string, prizeId: string, at: number): Promise<boolean> {
    const k = this.keys(activityId, childId);
    return (await this.redis.hbDrawRelease(k.draw(drawId), k.wins, k.issued, k.slice(at), userId, prizeId)) === 1;
  }

  async isLoaded(activityId: string, childId: string): Promise<boolean> {
    return (await this.redis.exists(this.keys(activityId, childId).loaded)) === 1;
  }

  /**
   * Rebuilds a child's counters from the projection. Only one instance restores at a time (a
   * lock); draws wait meanwhile, because the marker is down. `settle` runs under the lock before
   * the projection is read: it lets draws that took units before Redis lost them land in the
   * log, and catches the projection up to the log's end. Returns false if another instance
   * holds the lock.
   */
  async restore(activityId: string, childId: string, settle: () => Promise<void>, read: () => Promise<Consumption>, lockMs: number): Promise<boolean> {
    const k = this.keys(activityId, childId);
    const token = randomUUID();
    if ((await this.redis.set(k.restoring, token, 'PX', lockMs, 'NX')) !== 'OK') return false;
    try {
      if (await this.isLoaded(activityId, childId)) return true;
      await settle();
      const { issued, wins } = await read();
      const pipe = this.redis.multi();
      pipe.del(k.issued, k.wins);
      const chunk = 1000;
      const issuedPairs = [...issued].flatMap(([p, n]) => [p, String(n)]);
      for (let i = 0; i < issuedPairs.length; i += chunk * 2) pipe.hset(k.issued, ...issuedPairs.slice(i, i + chunk * 2));
      const winPairs = [...wins].flatMap(([u, n]) => [u, String(n)]);
      for (let i = 0; i < winPairs.length; i += chunk * 2) pipe.hset(k.wins, ...winPairs.slice(i, i + chunk * 2));
      await pipe.exec();
      return (await this.redis.hbDrawOpen(k.loaded, k.restoring, token, String(Date.now()))) === 1;
    } finally {
      // Only our own lock: if it expired and another restorer took it, leave theirs.
      await this.redis.eval("if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0", 1, k.restoring, token);
    }
  }

  async counters(activityId: string, childId: string): Promise<{ issued: Map<string, number>; wins: Map<string, number> }> {
    const k = this.keys(activityId, childId);
    const [issued, wins] = await Promise.all([this.redis.hgetall(k.issued), this.redis.hgetall(k.wins)]);
    const toMap = (h: Record<string, string>) => new Map(Object.entries(h).map(([key, v]) => [key, Number(v)]));
    return { issued: toMap(issued), wins: toMap(wins) };
  }
}
