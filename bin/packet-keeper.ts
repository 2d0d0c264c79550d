import { loadConfig } from '../infra/config.ts';
import { openRuntime, setupNamespace } from '../infra/runtime.ts';
import { PacketKeeper } from '../streams/packet-keeper.ts';
import { onShutdown } from './shutdown.ts';

await setupNamespace(loadConfig());
const rt = await openRuntime('packet-keeper');
const keeper = new PacketKeeper(rt);
keeper.start();
rt.log.info('packet keeper running', { intervalMs: rt.cfg.packetKeeperIntervalMs, claimSweepMs: rt.cfg.packetClaimSweepMs });
onShutdown(rt.log, async () => {
  await keeper.stop();
  await rt.close();
});
