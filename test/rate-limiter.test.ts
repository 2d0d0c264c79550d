import t from 'tap';
import { Redis } from 'ioredis';
import { SharedRateLimiter, SLICE_MS } from '../streams/rate-limiter.ts';
import { loadConfig } from '../infra/config.ts';
import { testNamespace } from './helpers/ledger.ts';

t.test('instances share one limit per 100 ms slice', async (t) => {
  const redis = new Redis(loadConfig().redisUrl);
  t.teardown(() => redis.disconnect());
  const key = `${testNamespace()}:rate`;
  let now = 1_000_000 * SLICE_MS; // a fixed clock: the test controls the slice
  const clock = () => now;
  const a = new SharedRateLimiter(redis, key, 50, clock); // 50/s = 5 per slice
  const b = new SharedRateLimiter(redis, key, 50, clock);
  t.equal(await a.tryTake(3), 3);
  t.equal(await b.tryTake(3), 2, 'the second instance gets only what is left');
  t.equal(await a.tryTake(1), 0, 'the slice is spent');
  now += SLICE_MS;
  t.equal(await b.tryTake(10), 5, 'a new slice brings new permits, never more than its share');
  await redis.del(`${key}:${now / SLICE_MS}`, `${key}:${now / SLICE_MS - 1}`);
});

t.test('take waits for later slices instead of exceeding the rate', async (t) => {
  const redis = new Redis(loadConfig().redisUrl);
  t.teardown(() => redis.disconnect());
  const limiter = new SharedRateLimiter(redis, `${testNamespace()}:rate`, 100); // 10 per slice
  const slices = new Set<number>();
  let got = 0;
  while (got < 30) {
    const n = await limiter.take(5);
    got += n;
    slices.add(Math.floor(Date.now() / SLICE_MS));
  }
  t.equal(got, 30);
  t.ok(slices.size >= 3, `30 permits at 10 per slice were granted across ${slices.size} slices, never fewer than three`);
});
