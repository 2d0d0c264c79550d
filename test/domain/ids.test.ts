import t from 'tap';
import fc from 'fast-check';
import { deterministicId, isUuid } from '../../domain/ids.ts';
import { IdSet } from '../../domain/id-set.ts';

t.test('derived ids never change: they are stored in the log and the projection', async (t) => {
  // Computed by the first implementation (sha256, bytes patched for version 8 and variant 10).
  t.equal(deterministicId('token', 'spring', 'order-1'), '57940e45-d132-83a3-a97b-0f57bde6ae35');
  t.equal(deterministicId('withdrawal', 'u-1', 'k'), '1b4180b4-5e7e-8d7b-9052-20cc82a1ff00');
  t.equal(deterministicId('k', '红包', ''), '4aca424f-99f8-8721-9ed1-4accb81df079');
  fc.assert(fc.property(fc.string(), fc.array(fc.string(), { maxLength: 3 }), (kind, key) => {
    const id = deterministicId(kind, ...key);
    return isUuid(id) && id[14] === '8' && '89ab'.includes(id[19]!);
  }));
});

t.test('isUuid accepts exactly the canonical spelling', async (t) => {
  const canonical = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
  t.ok(isUuid('00000000-0000-0000-0000-000000000000'));
  t.notOk(isUuid('57940E45-D132-83A3-A97B-0F57BDE6AE35'), 'upper case is not canonical');
  t.notOk(isUuid('57940e45d13283a3a97b0f57bde6ae35----'), 'hyphens in their places');
  t.notOk(isUuid('57940e45-d132-83a3-a97b-0f57bde6ae3'), 'length');
  fc.assert(fc.property(fc.oneof(fc.uuid().map((u) => u.toLowerCase()), fc.string({ minLength: 36, maxLength: 36 }), fc.string({ unit: 'binary', minLength: 36, maxLength: 36 }), fc.stringMatching(/^[0-9a-g-]{36}$/)),
    (s) => isUuid(s) === canonical.test(s)));
});

t.test('IdSet behaves as a Set of strings', async (t) => {
  const id = fc.oneof(fc.uuid().map((u) => u.toLowerCase()), fc.uuid().map((u) => u.toUpperCase()), fc.string({ maxLength: 40 }));
  fc.assert(fc.property(fc.array(fc.tuple(fc.constantFrom('add', 'has'), id), { maxLength: 300 }), (ops) => {
    const ours = new IdSet();
    const model = new Set<string>();
    for (const [op, x] of ops) {
      if (op === 'add') {
        if (ours.add(x) !== !model.has(x)) return false;
        model.add(x);
      } else if (ours.has(x) !== model.has(x)) return false;
    }
    return ours.size === model.size;
  }), { numRuns: 300 });
  // Past several growths of the table, and ids that differ in one word only.
  const big = new IdSet();
  const ids = Array.from({ length: 50_000 }, (_, i) => `00000000-0000-0000-0000-${i.toString(16).padStart(12, '0')}`);
  t.ok(ids.every((x) => big.add(x)), 'each new id is added');
  t.equal(big.size, 50_000);
  t.ok(ids.every((x) => big.has(x) && !big.add(x)), 'every id found, none added twice');
  t.notOk(big.has('00000000-0000-0000-0001-000000000000'), 'an id never added is absent');
  const copy = IdSet.fromData(structuredClone(big.toData()));
  t.ok(ids.every((x) => copy.has(x)) && copy.size === big.size, 'passed as data to another thread, it holds the same ids');
  const other = new IdSet();
  other.add('not-a-uuid');
  other.add('00000000-0000-0000-0001-000000000000');
  t.notOk(big.intersects(other) || other.intersects(big), 'disjoint sets do not intersect');
  other.add(ids[31_337]!);
  t.ok(big.intersects(other) && other.intersects(big), 'one shared id is found from either side');
});
