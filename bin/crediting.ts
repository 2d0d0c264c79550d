import { loadConfig } from '../infra/config.ts';
import { openRuntime, setupNamespace } from '../infra/runtime.ts';
import { CreditingProcessor } from '../streams/crediting.ts';
import { onShutdown } from './shutdown.ts';

await setupNamespace(loadConfig());
const rt = await openRuntime('crediting');
const crediting = new CreditingProcessor(rt);
await crediting.start();
rt.log.info('crediting processor running', { group: crediting.name, ratePerSec: rt.cfg.creditRatePerSec });
onShutdown(rt.log, async () => {
  await crediting.stop();
  await rt.close();
});
