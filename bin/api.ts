import { loadConfig } from '../infra/config.ts';
import { migrate } from '../infra/db.ts';
import { openRuntime } from '../infra/runtime.ts';
import { loadSecrets } from './secrets.ts';
import { buildApp } from '../api/app.ts';
import { onShutdown } from './shutdown.ts';

// Postgres is needed to serve anything (the journal, every read): the API does not start without
// it. Kafka and the schema registry are not: the namespace's topics, its schemas and the producer
// are set up in the background once it listens (infra/kafka-link.ts), and the journal keeps
// what is accepted until its relay can produce it. An API started during a Kafka outage serves.
const cfg = loadConfig();
await migrate(cfg.databaseUrl, cfg.namespace);
const rt = await openRuntime('api', {}, 20, { kafka: 'background' });
const app = await buildApp(rt, loadSecrets(rt.cfg));
await app.listen({ host: rt.cfg.apiHost, port: rt.cfg.apiPort });
rt.kafkaLink.start();
rt.log.info('api listening', { url: `http://${rt.cfg.apiHost}:${rt.cfg.apiPort}` });
onShutdown(rt.log, async () => {
  await app.close();
  await rt.close();
});
