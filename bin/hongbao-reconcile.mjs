#!/usr/bin/env node
// The replay audit's command (`npm run reconcile`, and the installed `hongbao-reconcile`):
// runs bin/reconcile.ts through tsx, so the audit finance runs is exactly the TypeScript in
// this repository, in a Node process started with the audit's flags (reconcile/node-flags.ts).
// tsx is loaded with --import rather than in this process, so the audit's worker threads
// load TypeScript too.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { register } from 'tsx/esm/api';

const unregister = register();
const { AUDIT_NODE_FLAGS } = await import('../reconcile/node-flags.ts');
await unregister();
const child = spawn(process.execPath, [...AUDIT_NODE_FLAGS, '--import', import.meta.resolve('tsx'), fileURLToPath(new URL('./reconcile.ts', import.meta.url)), ...process.argv.slice(2)], { stdio: 'inherit' });
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 2 : 0)));
