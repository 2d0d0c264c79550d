/**
 * Node flags the replay audit runs with (`npm run reconcile`, the installed command, and both
 * sides of the benchmark). A replay decodes millions of short-lived events next to a large
 * long-lived fold; with V8's default 16 MiB young generation the events of one fetch outlive
 * a scavenge and are copied into the old generation, and garbage collection cost the
 * 1,000,000-event audit more than twice as much as with 64 MiB (docs/benchmarks.md).
 */
export const AUDIT_NODE_FLAGS = ['--max-semi-space-size=64'];
