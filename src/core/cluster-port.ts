/**
 * The cluster port: what the core and the operations side see of this node's place in a
 * cluster. The server gets one at construction: a single node (the default, below) or
 * the Redis cluster (src/cluster/cluster-node.ts, `cluster.driver: redis`). Callers never
 * test for "no cluster": a single node is a cluster of one, whose invalidations reach
 * nobody and whose replay guard is this process's memory.
 */
import type { XmlElement } from '../xml/element.js';
import { MemoryReplayGuard, type ReplayGuard } from '../support/replay-guard.js';

export interface ClusterPort {
  /** Several nodes share the sessions (false: a single node). */
  readonly clustered: boolean;
  readonly nodeId: string;
  members(): string[];
  stats(): Record<string, unknown>;
  /** Tells the other nodes that what they keep in memory under (topic, key) changed. */
  invalidate(topic: string, key: string): void;
  /** One-time credentials used anywhere in the cluster (signed portal requests). */
  readonly replayGuard: ReplayGuard;
  /** Joins (after the modules loaded, before the listeners open). */
  start(): Promise<void>;
  /** Leaves (after the sessions ended). */
  stop(): Promise<void>;
  /** How a reply to an IQ another node sent reaches that node (IQ correlation). */
  routeOn(node: string, stanza: XmlElement): boolean;
}

/** One process: nothing to join, nothing to tell. */
export class SingleNode implements ClusterPort {
  readonly clustered = false;
  readonly replayGuard: ReplayGuard = new MemoryReplayGuard();

  constructor(readonly nodeId: string) {}

  members(): string[] {
    return [this.nodeId];
  }

  stats(): Record<string, unknown> {
    return { node: this.nodeId, members: [this.nodeId] };
  }

  invalidate(): void {
    // No other node keeps a copy.
  }

  async start(): Promise<void> {}

  async stop(): Promise<void> {}

  routeOn(): boolean {
    return false;
  }
}
