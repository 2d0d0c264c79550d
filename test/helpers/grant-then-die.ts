// A process that decides a gift-pack grant and is killed (SIGKILL, by itself) at the moment it
// would produce the event: Postgres has committed the stock, the pack and the outbox row, and
// Kafka has heard nothing. Run by test/coupons.test.ts with the grant as its argument.
import { openRuntime } from '../../infra/runtime.ts';
import { CouponCommands } from '../../infra/coupon-store.ts';
import type { EventPublisher } from '../../infra/publisher.ts';

const rt = await openRuntime('grant-then-die');
const dies = { publish: async () => { process.kill(process.pid, 'SIGKILL'); await new Promise(() => {}); } } as unknown as EventPublisher;
const commands = new CouponCommands({ pool: rt.pool, publisher: dies, lowStockPercent: 10, log: rt.log });
await commands.grant(JSON.parse(process.argv[2]!), { grantedBy: 'grant-then-die', clientAddress: '127.0.0.1', requestId: 'r-die' });
throw new Error('the grant was produced: this process should have died first');
