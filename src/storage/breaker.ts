/**
 * A circuit breaker per shard. Closed: operations run, consecutive server failures are
 * counted. Open (after `failureThreshold` of them): operations fail at once, so a dead
 * shard costs its users an immediate error instead of a connect timeout each. After
 * `cooldownMs` one trial operation is let through (half-open): success closes the
 * breaker, failure opens it again. A passing health check closes it too.
 */

export type BreakerState = 'closed' | 'open' | 'half-open';

export interface BreakerOptions {
  failureThreshold: number;
  cooldownMs: number;
  now?: () => number;
}

export class CircuitBreaker {
  #state: BreakerState = 'closed';
  #failures = 0;
  #openedAt = 0;
  #trialOut = false;
  /** How many times it opened. */
  opens = 0;
  readonly #opts: Required<BreakerOptions>;
  /** Called on every change of state (for logs). */
  onChange: ((state: BreakerState) => void) | null = null;

  constructor(opts: BreakerOptions) {
    this.#opts = { now: Date.now, ...opts };
  }

  get state(): BreakerState {
    return this.#state;
  }

  /** May an operation run now? In half-open, only one trial at a time. */
  allow(): boolean {
    if (this.#state === 'closed') return true;
    if (this.#state === 'open') {
      if (this.#opts.now() - this.#openedAt < this.#opts.cooldownMs) return false;
      this.#set('half-open');
    }
    if (this.#trialOut) return false;
    this.#trialOut = true;
    return true;
  }

  success(): void {
    this.#failures = 0;
    this.#trialOut = false;
    if (this.#state !== 'closed') this.#set('closed');
  }

  failure(): void {
    this.#trialOut = false;
    this.#failures++;
    if (this.#state === 'half-open' || (this.#state === 'closed' && this.#failures >= this.#opts.failureThreshold)) {
      this.#openedAt = this.#opts.now();
      this.opens++;
      this.#set('open');
    } else if (this.#state === 'open') {
      this.#openedAt = this.#opts.now();
    }
  }

  /** An operation let through by allow() ended without telling (neither success nor server failure). */
  release(): void {
    this.#trialOut = false;
  }

  #set(s: BreakerState): void {
    if (s === this.#state) return;
    this.#state = s;
    this.onChange?.(s);
  }
}
