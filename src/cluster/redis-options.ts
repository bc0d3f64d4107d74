/**
 * How the cluster's Redis connections behave. A dropped connection is tried again quickly
 * (at most every 500 ms, not ioredis's 2 s): after Redis restarts, a node that reconnects
 * late routes with a directory that misses what the others wrote meanwhile, and its
 * lease may run out.
 */
import type { RedisOptions } from 'ioredis';

const RECONNECT_MAX_MS = 500;

export function clusterRedisOptions(extra: RedisOptions = {}): RedisOptions {
  return { lazyConnect: true, maxRetriesPerRequest: 2, retryStrategy: (times: number) => Math.min(50 * times, RECONNECT_MAX_MS), ...extra };
}
