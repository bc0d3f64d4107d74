/**
 * A mergeable latency histogram with log buckets: 32 sub-buckets per power of two, so
 * any value is within ~3% of its bucket; from 1 µs to hours. Workers send their bucket
 * counts; the coordinator adds them up.
 */
const SUB = 32;
const MIN_US = 1;
const BUCKETS = 40 * SUB;

export class Histogram {
  counts: Uint32Array;
  count = 0;
  max = 0;
  sum = 0;

  constructor(counts?: number[]) {
    this.counts = counts ? Uint32Array.from(counts) : new Uint32Array(BUCKETS);
    if (counts) for (const c of counts) this.count += c;
  }

  /** Records a value in milliseconds. */
  record(ms: number): void {
    const us = Math.max(MIN_US, ms * 1000);
    const exp = Math.floor(Math.log2(us));
    const sub = Math.floor((us / 2 ** exp - 1) * SUB);
    const i = Math.min(BUCKETS - 1, exp * SUB + sub);
    this.counts[i]!++;
    this.count++;
    this.sum += ms;
    if (ms > this.max) this.max = ms;
  }

  merge(other: { counts: ArrayLike<number>; max: number; sum: number }): void {
    let added = 0;
    for (let i = 0; i < BUCKETS; i++) {
      const c = other.counts[i] ?? 0;
      this.counts[i]! += c;
      added += c;
    }
    this.count += added;
    this.sum += other.sum;
    if (other.max > this.max) this.max = other.max;
  }

  /** The value (ms) below which `p` percent of the records fall. */
  percentile(p: number): number {
    if (this.count === 0) return 0;
    const target = Math.ceil((p / 100) * this.count);
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i]!;
      if (seen >= target) {
        const exp = Math.floor(i / SUB);
        const sub = i % SUB;
        const upperUs = 2 ** exp * (1 + (sub + 1) / SUB);
        return Math.min(upperUs / 1000, this.max);
      }
    }
    return this.max;
  }

  get mean(): number {
    return this.count ? this.sum / this.count : 0;
  }

  toJSON(): { counts: number[]; max: number; sum: number } {
    return { counts: Array.from(this.counts), max: this.max, sum: this.sum };
  }

  reset(): void {
    this.counts.fill(0);
    this.count = 0;
    this.max = 0;
    this.sum = 0;
  }
}
