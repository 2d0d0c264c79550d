// The entry of an audit's fold worker thread: registers tsx in the thread (a worker does not
// inherit its parent's module hooks), then runs fold-worker.ts.
import { register } from 'tsx/esm/api';

register();
await import('./fold-worker.ts');
