// A process that decides a gift-pack grant and is killed (SIGKILL, by itself) as soon as the
// decision is committed, before any relay of its own could produce it: Postgres has the stock,
// the pack and the journal row, and Kafka has heard nothing. Run by test/coupons.test.ts with
// the grant as its argument.
import { openRuntime } from '../../infra/runtime.ts';
import { CouponCommands } from '../../infra/coupon-store.ts';
import { journalFor } from '../../infra/journal.ts';

const rt = await openRuntime('grant-then-die');
const commands = new CouponCommands({ pool: rt.pool, journal: journalFor(rt), lowStockPercent: 10 });
await commands.grant(JSON.parse(process.argv[2]!), { grantedBy: 'grant-then-die', clientAddress: '127.0.0.1', requestId: 'r-die' });
process.kill(process.pid, 'SIGKILL');
