// The payment-provider simulator as its own service: `tsx bin/payment-provider.ts`.
// Its records live in the Postgres schema "<namespace>_psp", apart from the ledger's.
import { loadConfig } from '../infra/config.ts';
import { providerApiKey } from '../infra/keys.ts';
import { PayoutRecords } from '../simulator/payment-provider/store.ts';
import { buildProvider } from '../simulator/payment-provider/app.ts';

const cfg = loadConfig();
const records = new PayoutRecords(cfg.databaseUrl, `${cfg.namespace}_psp`);
await records.migrate();
const app = await buildProvider(records, {
  apiKey: providerApiKey(cfg.providerApiKey),
  behaviour: {
    capacityPerSec: Number(process.env.PROVIDER_CAPACITY_PER_SEC ?? 2000),
    latencyMs: Number(process.env.PROVIDER_LATENCY_MS ?? 5),
    failureRate: Number(process.env.PROVIDER_FAILURE_RATE ?? 0),
  },
});
await app.listen({ host: '127.0.0.1', port: cfg.providerPort });
console.log(`[payment-provider] simulator listening on ${cfg.providerPort}; change behaviour with PUT /admin/config`);
const stop = async () => {
  await app.close();
  await records.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
