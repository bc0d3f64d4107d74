/**
 * `cluster.secret`: the key of every link between nodes (see links.ts). Required as soon
 * as the cluster is on, checked when the configuration is read and again when a node
 * starts (a `--nodes` child turns the cluster on after reading the file).
 */
import { ConfigError } from '../support/errors.js';

/** The shortest cluster.secret accepted (as for the other secrets of the configuration). */
export const MIN_CLUSTER_SECRET = 32;

/**
 * SECURITY: a cluster without a real key would let anyone who reaches a link port in.
 * Returns the secret; throws a ConfigError naming `cluster.secret`.
 */
export function checkClusterSecret(secret: string | undefined): string {
  if (secret === undefined || secret === '') {
    throw new ConfigError('cluster.secret', `is required when cluster.driver is redis (it keys the links between nodes): the same random string of at least ${MIN_CLUSTER_SECRET} characters on every node`);
  }
  if (secret.length < MIN_CLUSTER_SECRET) throw new ConfigError('cluster.secret', `must be at least ${MIN_CLUSTER_SECRET} characters`);
  return secret;
}
