// `npm run invariants`: checks the ledger's invariants against the projection and exits
// non-zero if any is violated. The same check serves GET /v1/admin/invariants.
import { openRuntime } from '../infra/runtime.ts';
import { ProjectionFence } from '../infra/projection-fence.ts';
import { checkInvariants } from '../projections/invariants.ts';

const rt = await openRuntime('invariants');
const fence = new ProjectionFence(rt);
try {
  const report = await checkInvariants(rt.pool, { budgetLag: () => fence.lag(rt.topics.budget) });
  console.log(JSON.stringify(report, null, 2));
  process.exitCode = report.ok ? 0 : 1;
} finally {
  await fence.close();
  await rt.close();
}
