#!/usr/bin/env node
// The replay audit's command (`npm run reconcile`, and the installed `hongbao-reconcile`):
// runs bin/reconcile.ts through tsx, so the audit finance runs is exactly the TypeScript in
// this repository, in a Node process started with the audit's flags (reconcile/node-flags.ts).
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { register } from 'tsx/esm/api';

register();
const { AUDIT_NODE_FLAGS } = await import('../reconcile/node-flags.ts');
if (AUDIT_NODE_FLAGS.every((f) => process.execArgv.includes(f))) {
  await import('./reconcile.ts');
} else {
  const child = spawn(process.execPath, [...AUDIT_NODE_FLAGS, fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: 'inherit' });
  for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 2 : 0)));
}
