/**
 * A set of event ids. Ids in the canonical UUID spelling (every id the ledger derives or
 * accepts, see validate.ts) are kept as 128-bit keys in one typed-array hash table; anything
 * else in an ordinary Set. A replay keeps every event id of the log to apply each once, and
 * a million id strings in a Set cost the fold more in garbage collection than its rules.
 */
export interface IdSetData {
  slots: number;
  count: number;
  keys: Uint32Array;
  used: Uint8Array;
  other: string[];
}

export class IdSet {
  private slots = 1 << 12;
  /** Four 32-bit words per slot; a slot is taken when its `used` byte is 1. */
  private keys: Uint32Array = new Uint32Array(this.slots * 4);
  private used: Uint8Array = new Uint8Array(this.slots);
  private count = 0;
  private readonly other = new Set<string>();
  private readonly k = new Uint32Array(4);

  get size(): number {
    return this.count + this.other.size;
  }

  has(id: string): boolean {
    if (!this.parse(id)) return this.other.has(id);
    return this.find() >= 0;
  }

  /** Adds the id; false when it was already there. */
  add(id: string): boolean {
    if (!this.parse(id)) {
      if (this.other.has(id)) return false;
      this.other.add(id);
      return true;
    }
    if (this.find() >= 0) return false;
    if ((this.count + 1) * 2 > this.slots) this.grow();
    this.insert(this.k[0]!, this.k[1]!, this.k[2]!, this.k[3]!);
    this.count++;
    return true;
  }

  /** Whether any id is in both sets. */
  intersects(other: IdSet): boolean {
    for (const id of this.other) if (other.has(id)) return true;
    for (let s = 0; s < this.slots; s++) {
      if (this.used[s] !== 1) continue;
      for (let w = 0; w < 4; w++) other.k[w] = this.keys[s * 4 + w]!;
      if (other.find() >= 0) return true;
    }
    return false;
  }

  /** The set as plain data (typed arrays and strings), to pass to another thread. */
  toData(): IdSetData {
    return { slots: this.slots, count: this.count, keys: this.keys, used: this.used, other: [...this.other] };
  }

  static fromData(data: IdSetData): IdSet {
    const set = new IdSet();
    set.slots = data.slots;
    set.count = data.count;
    set.keys = data.keys;
    set.used = data.used;
    for (const id of data.other) set.other.add(id);
    return set;
  }

  /** The slot of the parsed key, or -1. */
  private find(): number {
    const k0 = this.k[0]!;
    const k1 = this.k[1]!;
    const k2 = this.k[2]!;
    const k3 = this.k[3]!;
    const mask = this.slots - 1;
    for (let s = slotOf(k0, k3) & mask; ; s = (s + 1) & mask) {
      if (this.used[s] === 0) return -1;
      const o = s * 4;
      if (this.keys[o] === k0 && this.keys[o + 1] === k1 && this.keys[o + 2] === k2 && this.keys[o + 3] === k3) return s;
    }
  }

  private insert(k0: number, k1: number, k2: number, k3: number): void {
    const mask = this.slots - 1;
    let s = slotOf(k0, k3) & mask;
    while (this.used[s] === 1) s = (s + 1) & mask;
    this.used[s] = 1;
    const o = s * 4;
    this.keys[o] = k0;
    this.keys[o + 1] = k1;
    this.keys[o + 2] = k2;
    this.keys[o + 3] = k3;
  }

  private grow(): void {
    const { keys, used, slots } = this;
    this.slots = slots * 2;
    this.keys = new Uint32Array(this.slots * 4);
    this.used = new Uint8Array(this.slots);
    for (let s = 0; s < slots; s++) if (used[s] === 1) this.insert(keys[s * 4]!, keys[s * 4 + 1]!, keys[s * 4 + 2]!, keys[s * 4 + 3]!);
  }

  /** Reads a canonical UUID (8-4-4-4-12 lowercase hex) into `k`; false for any other string. */
  private parse(id: string): boolean {
    if (id.length !== 36) return false;
    let w = 0;
    let word = 0;
    let digits = 0;
    for (let i = 0; i < 36; i++) {
      const c = id.charCodeAt(i);
      if (i === 8 || i === 13 || i === 18 || i === 23) {
        if (c !== 45) return false; // '-'
        continue;
      }
      const v = c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : -1;
      if (v < 0) return false;
      word = (word << 4) | v;
      if (++digits === 8) {
        this.k[w++] = word;
        word = 0;
        digits = 0;
      }
    }
    return true;
  }
}

function slotOf(k0: number, k3: number): number {
  // Derived ids are hash outputs, so a little mixing of two words spreads them well enough.
  return Math.imul(k0 ^ Math.imul(k3, 0x9e3779b1), 0x85ebca6b) >>> 15 ^ k0;
}
