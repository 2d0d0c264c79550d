// Prepares the namespace (LEDGER_NAMESPACE, default "hongbao"): migrations, topics, schemas.
import { loadConfig } from '../infra/config.ts';
import { setupNamespace } from '../infra/runtime.ts';

const cfg = loadConfig();
await setupNamespace(cfg);
process.stderr.write(`[setup] namespace "${cfg.namespace}" ready: migrations applied, topics created, schemas registered\n`);
