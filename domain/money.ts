/**
 * Money is an integer count of minor units (fen) with an explicit currency. No floats
 * anywhere: amounts arrive as JSON integers, travel as Avro longs and sit in bigint columns.
 */
export const CURRENCIES = ['CNY'] as const;
export type Currency = (typeof CURRENCIES)[number];

export function isCurrency(value: string): value is Currency {
  return (CURRENCIES as readonly string[]).includes(value);
}

/**
 * Largest amount a single value may carry: safe for JS numbers, bigint and Avro longs, whose
 * codec (avsc) takes ±(2^53 − 2), one short of Number.MAX_SAFE_INTEGER. An amount past it
 * would be accepted and then never produced.
 */
export const MAX_AMOUNT = 2 ** 53 - 2;

export function isPositiveMinorUnits(amount: unknown): amount is number {
  return typeof amount === 'number' && Number.isSafeInteger(amount) && amount > 0 && amount <= MAX_AMOUNT;
}

export function assertPositiveMinorUnits(amount: number, what: string): void {
  if (!isPositiveMinorUnits(amount)) {
    throw new RangeError(`${what} must be a positive integer number of minor units, got ${amount}`);
  }
}

/** The one funds rule: a debit from an available balance must be covered by it. */
export function coversDebit(available: number, amount: number): boolean {
  return amount <= available;
}
