import { loadConfig } from '../infra/config.ts';
import { openRuntime, setupNamespace } from '../infra/runtime.ts';
import { CouponKeeper } from '../streams/coupon-keeper.ts';
import { onShutdown } from './shutdown.ts';

await setupNamespace(loadConfig());
const rt = await openRuntime('coupon-keeper');
const keeper = new CouponKeeper(rt);
keeper.start();
rt.log.info('coupon keeper running', { intervalMs: rt.cfg.couponKeeperIntervalMs });
onShutdown(rt.log, async () => {
  await keeper.stop();
  await rt.close();
});
