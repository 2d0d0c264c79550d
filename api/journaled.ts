import { JournalUnavailable } from '../infra/journal.ts';
import { ApiError } from './errors.ts';

/**
 * Runs a command-journal write for a route. Only a journal that cannot be written turns an
 * accepted request away, and then fast, as a 503 telling the caller how to retry.
 */
export async function journaled<T>(write: () => Promise<T>, retryHint: string): Promise<T> {
  try {
    return await write();
  } catch (err) {
    if (err instanceof JournalUnavailable) throw new ApiError(503, 'LEDGER_UNAVAILABLE', retryHint, { retryAfterMs: 1_000 });
    throw err;
  }
}
