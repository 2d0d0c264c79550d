import { loadConfig } from '../infra/config.ts';
import { openRuntime, setupNamespace } from '../infra/runtime.ts';
import { LedgerProjector } from '../projections/ledger-projector.ts';
import { onShutdown } from './shutdown.ts';

await setupNamespace(loadConfig());
const rt = await openRuntime('projector');
const projector = new LedgerProjector(rt);
await projector.start();
rt.log.info('ledger projector running', { group: projector.name });
onShutdown(rt.log, async () => {
  await projector.stop();
  await rt.close();
});
