/**
 * The replay guard of a cluster (src/core/replay-guard.ts): one Redis key per claim,
 * `<cluster.prefix>:replay:<key>`, set with `SET … NX PX <ttl>`, so the first node to
 * claim a key wins and every other claim (on any node) is refused until the key expires
 * by itself (nothing to clean up).
 */
import type { Redis } from 'ioredis';
import type { ReplayGuard } from '../support/replay-guard.js';

export class RedisReplayGuard implements ReplayGuard {
  readonly #redis: Redis;
  readonly #prefix: string;

  constructor(redis: Redis, prefix: string) {
    this.#redis = redis;
    this.#prefix = `${prefix}:replay:`;
  }

  async claim(key: string, ttlMs: number): Promise<boolean> {
    const r = await this.#redis.set(this.#prefix + key, '1', 'PX', Math.max(1, Math.ceil(ttlMs)), 'NX');
    return r === 'OK';
  }
}
