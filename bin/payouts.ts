import { loadConfig } from '../infra/config.ts';
import { openRuntime, setupNamespace } from '../infra/runtime.ts';
import { providerApiKey } from '../infra/keys.ts';
import { PayoutProcessor } from '../streams/payouts.ts';
import { PaymentProviderClient } from '../streams/payment-provider-client.ts';
import { onShutdown } from './shutdown.ts';

await setupNamespace(loadConfig());
const rt = await openRuntime('payouts');
const payouts = new PayoutProcessor(rt, new PaymentProviderClient(rt.cfg.providerUrl, providerApiKey(rt.cfg.providerApiKey)));
await payouts.start();
rt.log.info('payout processor running', { group: payouts.name, provider: rt.cfg.providerUrl, ratePerSec: rt.cfg.payoutRatePerSec });
onShutdown(rt.log, async () => {
  await payouts.stop();
  await rt.close();
});
