/**
 * The one reading of a date-time that people write into the ledger (campaign windows):
 * RFC 3339 with an explicit offset, `2027-01-28T20:00:00+08:00`. Validation accepts exactly
 * what this reads, so a stored window is always read as it was meant: `+08:00`, `+0800` and
 * `+08` are the same offset; `Z` is UTC. What cannot be an instant on the ledger's clock
 * (a leap second, 30 February, an offset past 23:59) is refused with the reason, not guessed.
 */
export type InstantReading = { ok: true; ms: number } | { ok: false; problem: string };

const SHAPE = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:[Zz]|([+-])(\d{2})(?::?(\d{2}))?)$/;

export const INSTANT_EXAMPLE = '2027-01-28T20:00:00+08:00';

const DAY_MS = 86_400_000;

/** Days from 1970-01-01 to a proleptic Gregorian date (Hinnant's days_from_civil). */
function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146_097 + doe - 719_468;
}

function daysInMonth(year: number, month: number): number {
  if (month === 2) return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28;
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

export function readInstant(text: string): InstantReading {
  const m = SHAPE.exec(text);
  if (!m) return { ok: false, problem: `must be a date-time (e.g. ${INSTANT_EXAMPLE})` };
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) {
    return { ok: false, problem: `must be a date-time: ${m[1]}-${m[2]}-${m[3]} is not a day of the calendar` };
  }
  if (hour > 23 || minute > 59) return { ok: false, problem: `must be a date-time: ${m[4]}:${m[5]} is not a time of day` };
  // The ledger's clock (like every POSIX clock) has no leap seconds: :60 has no instant of its own.
  if (second === 60) return { ok: false, problem: 'must be a date-time without a leap second (:60); write :59 or the next minute' };
  if (second > 59) return { ok: false, problem: `must be a date-time: :${m[6]} is not a second` };
  let offsetMin = 0;
  if (m[8] !== undefined) {
    const oh = Number(m[9]);
    const om = m[10] === undefined ? 0 : Number(m[10]);
    if (oh > 23 || om > 59) return { ok: false, problem: `must be a date-time: ${m[8]}${m[9]}${m[10] === undefined ? '' : `:${m[10]}`} is not an offset from UTC` };
    offsetMin = (m[8] === '-' ? -1 : 1) * (oh * 60 + om);
  }
  const millis = m[7] === undefined ? 0 : Number(m[7].padEnd(3, '0').slice(0, 3));
  const ms = daysFromCivil(year, month, day) * DAY_MS + ((hour * 60 + minute - offsetMin) * 60 + second) * 1000 + millis;
  return { ok: true, ms };
}

export function isInstant(text: string): boolean {
  return readInstant(text).ok;
}

/** Reads an instant that validation accepted; anything else is a programming error, never NaN. */
export function instantMs(text: string): number {
  const r = readInstant(text);
  if (!r.ok) throw new RangeError(`"${text}" ${r.problem}`);
  return r.ms;
}
