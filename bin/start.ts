// `npm start`: brings up local infrastructure, prepares the ledger, runs the API and the
// processors as separate processes (as they would run in production), and prints how to try it.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../infra/config.ts';
import { logger } from '../infra/log.ts';
import { setupNamespace } from '../infra/runtime.ts';
import { loadSecrets } from './secrets.ts';
import { Supervisor } from './supervise.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const up = spawnSync('bash', ['infra/up.sh'], { cwd: root, stdio: 'inherit' });
if (up.status !== 0) process.exit(up.status ?? 1);

const cfg = loadConfig();
await setupNamespace(cfg);
const secrets = loadSecrets(cfg);

// A process that dies (a bug, a dependency down when it started) is restarted with backoff;
// the others carry on. Only Ctrl-C or SIGTERM stops them all; a second one kills them at once.
const names = ['payment-provider', 'api', 'projector', 'crediting', 'payouts', 'reconciler', 'packet-keeper', 'coupon-keeper'];
const supervisor = new Supervisor(names.map((name) => ({ name, args: ['--import', 'tsx', `bin/${name}.ts`] })), { cwd: root, env: process.env, log: logger({ svc: 'start' }) });
let stopping = false;
const stop = () => {
  if (stopping) {
    supervisor.kill();
    process.exit(1);
  }
  stopping = true;
  void supervisor.stop().then(() => process.exit(0));
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
// The children have their own process group; should this process end any other way, they end with it.
process.on('exit', () => supervisor.kill());

const base = `http://${cfg.apiHost}:${cfg.apiPort}`;
for (let i = 0; i < 100; i++) {
  if (await fetch(`${base}/health`).then((r) => r.ok, () => false)) break;
  await new Promise((r) => setTimeout(r, 200));
}
// The demo is a convenience: if the API is not up to set it up, the ledger runs on without it.
await demo().catch((err) => logger({ svc: 'start' }).warn('demo activities not set up; run npm start again to add them', { err }));
async function demo() {
  // A demo activity with a budget, so the first grant just works. Both calls are idempotent.
  const admin = { authorization: `Bearer ${secrets.adminToken}`, 'content-type': 'application/json' };
  await fetch(`${base}/v1/admin/activities/demo-rain`, { method: 'PUT', headers: admin, body: JSON.stringify({ name: 'Demo red-packet rain', currency: 'CNY', maxSingleGrant: 20_000 }) });
  await fetch(`${base}/v1/admin/activities/demo-rain/fundings`, { method: 'POST', headers: admin, body: JSON.stringify({ fundingId: 'demo-initial', amount: 100_000_000, currency: 'CNY' }) });
  // A demo lottery campaign (a shake with cash and a frame), put once; its formal child's budget funded.
  if ((await fetch(`${base}/v1/admin/campaigns/demo-shake/config`, { headers: admin })).status === 404) {
    const from = new Date(Date.now() - 60_000).toISOString();
    const until = new Date(Date.now() + 365 * 86_400_000).toISOString();
    await fetch(`${base}/v1/admin/campaigns/demo-shake/config?note=demo`, {
      method: 'PUT', headers: admin,
      body: JSON.stringify({
        activityId: 'demo-shake', name: 'Demo shake', currency: 'CNY',
        children: [{
          childId: 'formal', stage: 'formal', startsAt: from, endsAt: until, winLimit: 3,
          scenes: [{
            sceneId: 'shake', awardType: 'cash', statementText: 'Demo shake', rateLimit: { draws: 10, perMs: 5_000 }, stockControl: true, reconcile: true,
            pool: { poolId: 'main', noWinWeight: 50, prizes: [{ prizeId: 'cash-88', name: '0.88 CNY', weight: 40, quota: 10_000, amount: 88, maxPerSlice: 100 }, { prizeId: 'cash-888', name: '8.88 CNY', weight: 10, quota: 100, amount: 888 }] },
          }],
        }],
      }),
    });
  }
  await fetch(`${base}/v1/admin/activities/demo-shake:formal/fundings`, { method: 'POST', headers: admin, body: JSON.stringify({ fundingId: 'demo-initial', amount: 100_000_000, currency: 'CNY' }) });
}

console.log(`
Hongbao Ledger is running (namespace "${cfg.namespace}").
  API              ${base}
  Kafka            ${cfg.kafkaBrokers.join(',')}
  Schema registry  ${cfg.schemaRegistryUrl}
  Postgres         ${cfg.databaseUrl}
  Redis            ${cfg.redisUrl}

Try it:
  curl ${base}/health
  npm run grant -- u-alice 88        # a signed upstream grant of 0.88 CNY to u-alice in "demo-rain"
  npm run draw -- u-alice            # a signed lottery draw for u-alice in "demo-shake"
  TOKEN=$(npm run -s user-token -- u-alice)
  curl -H "authorization: Bearer $TOKEN" ${base}/v1/wallets/u-alice
  curl -H "authorization: Bearer $TOKEN" ${base}/v1/wallets/u-alice/statement
  curl -H "authorization: Bearer $TOKEN" -H 'idempotency-key: first-withdrawal' -H 'content-type: application/json' -d '{"amount":50,"currency":"CNY"}' ${base}/v1/wallets/u-alice/withdrawals
  curl -H "authorization: Bearer $TOKEN" -H 'idempotency-key: first-packet' -H 'content-type: application/json' -d '{"amount":30,"currency":"CNY","count":3}' ${base}/v1/packets
  curl -X POST -H "authorization: Bearer $(npm run -s user-token -- u-bob)" ${base}/v1/packets/<packetId>/grab
  npm run invariants                 # the ledger's invariants, checked now
  npm run reconcile                  # finance's replay audit: log vs projection vs provider (reports/ has the files)
  curl http://${cfg.apiHost}:${cfg.reconcilerPort}/metrics   # the continuous reconciler: lag and differences

  Payment-provider simulator: http://127.0.0.1:${cfg.providerPort} (PUT /admin/config to cause outages)

Ctrl-C stops the ledger; "npm run infra:down" stops Kafka and the registry.
`);
