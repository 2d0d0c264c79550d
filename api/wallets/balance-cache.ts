/**
 * A short-lived, per-instance cache in front of the balance projection. The wallet page is
 * read far more often than a balance changes, and the projection is already a moment
 * behind the log, so serving a balance up to `ttlMs` old costs the user nothing while
 * taking most reads off Postgres. Concurrent misses for one key share one query. Money
 * decisions never read it: withdrawal checks go to Postgres under a lock. An instance
 * drops a user's entry when that user withdraws through it.
 */
export class ReadCache<V> {
  private readonly entries = new Map<string, { at: number; value: Promise<V> }>();

  constructor(private readonly ttlMs: number, private readonly maxEntries = 100_000) {}

  get(key: string, load: () => Promise<V>): Promise<V> {
    if (this.ttlMs <= 0) return load();
    const now = Date.now();
    const hit = this.entries.get(key);
    if (hit && now - hit.at < this.ttlMs) return hit.value;
    const value = load();
    if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(key, { at: now, value });
    // A failed load is not cached.
    value.catch(() => {
      if (this.entries.get(key)?.value === value) this.entries.delete(key);
    });
    return value;
  }

  forget(key: string): void {
    this.entries.delete(key);
  }
}
