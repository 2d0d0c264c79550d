import { loadConfig } from '../infra/config.ts';
import { openRuntime, setupNamespace } from '../infra/runtime.ts';
import { loadSecrets } from './secrets.ts';
import { buildApp } from '../api/app.ts';
import { onShutdown } from './shutdown.ts';

await setupNamespace(loadConfig());
const rt = await openRuntime('api', {}, 20);
const app = await buildApp(rt, loadSecrets(rt.cfg));
await app.listen({ host: rt.cfg.apiHost, port: rt.cfg.apiPort });
rt.log.info('api listening', { url: `http://${rt.cfg.apiHost}:${rt.cfg.apiPort}` });
onShutdown(rt.log, async () => {
  await app.close();
  await rt.close();
});
