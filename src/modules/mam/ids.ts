/**
 * Archive ids (XEP-0313 §3.3, XEP-0359): opaque to clients, unique in an archive and
 * ordered like time, so paging by id is paging by time and `start`/`end` become id bounds.
 *
 * An id is milliseconds since the epoch × 1024 plus a sequence number, a safe integer
 * until the year 2248. Clients see it as 11 characters of base 32 (fixed width, so the
 * strings sort like the numbers).
 */

/** Ids per millisecond. */
export const IDS_PER_MS = 1024;
const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';
const WIDTH = 11;
// eslint-disable-next-line @typescript-eslint/no-misused-spread -- the alphabet is ASCII: one character per code unit
const DECODE = new Map([...ALPHABET].map((c, i) => [c, i]));

/** Hands out increasing ids; a burst of more than 1024 per millisecond borrows from the next one. */
export class ArchiveIds {
  #last = 0;

  next(now = Date.now()): number {
    const base = now * IDS_PER_MS;
    this.#last = base > this.#last ? base : this.#last + 1;
    return this.#last;
  }
}

/** The time (ms) an id was given at. */
export function timeOfId(id: number): number {
  return Math.floor(id / IDS_PER_MS);
}

/** The first id of a millisecond. */
export function firstIdAt(ms: number): number {
  return ms * IDS_PER_MS;
}

export function encodeId(id: number): string {
  let s = '';
  let n = id;
  for (let i = 0; i < WIDTH; i++) {
    s = ALPHABET[n % 32]! + s;
    n = Math.floor(n / 32);
  }
  return s;
}

/** The id behind a client-supplied string, or null when it cannot be one of ours. */
export function decodeId(s: string): number | null {
  if (s.length !== WIDTH) return null;
  let n = 0;
  for (const c of s) {
    const d = DECODE.get(c);
    if (d === undefined) return null;
    n = n * 32 + d;
  }
  return Number.isSafeInteger(n) ? n : null;
}
