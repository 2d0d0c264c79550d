#!/usr/bin/env node
// The installed command for the replay audit (package.json "bin"): runs bin/reconcile.ts
// through tsx, so the audit finance runs is exactly the TypeScript in this repository.
import { register } from 'tsx/esm/api';

register();
await import('./reconcile.ts');
