/**
 * Group commit for the archive: the messages routed in one turn of the event loop are
 * written together (one transaction per database) instead of one transaction each.
 * Each write still resolves only once its row is stored, so "archived before delivered"
 * holds for every message.
 */
import { StorageError } from '../../support/errors.js';
import type { ArchiveEntry, ArchiveStore } from './store.js';

/** Where written rows are counted (ServerStats.archiveWrites). */
export interface ArchiveWriteCounter {
  archiveWrites: number;
}

interface Pending {
  host: string;
  username: string;
  entry: ArchiveEntry;
  resolve(): void;
  reject: (err: unknown) => void;
}

export class ArchiveWriter {
  readonly #store: ArchiveStore;
  readonly #stats: ArchiveWriteCounter;
  #queue: Pending[] = [];
  #scheduled = false;

  constructor(store: ArchiveStore, stats: ArchiveWriteCounter = { archiveWrites: 0 }) {
    this.#store = store;
    this.#stats = stats;
  }

  write(host: string, username: string, entry: ArchiveEntry): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ host, username, entry, resolve, reject });
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => this.#flush());
      }
    });
  }

  #flush(): void {
    const batch = this.#queue;
    this.#queue = [];
    this.#scheduled = false;
    // One commit per database: users on a healthy shard never wait for a slow or dead one.
    const parts = new Map<string, Pending[]>();
    for (const p of batch) {
      const key = this.#store.partitionOf(p.host, p.username);
      let list = parts.get(key);
      if (!list) parts.set(key, (list = []));
      list.push(p);
    }
    for (const part of parts.values()) void this.#commit(part);
  }

  async #commit(batch: Pending[]): Promise<void> {
    try {
      await this.#store.appendMany(batch);
      this.#stats.archiveWrites += batch.length;
      for (const p of batch) p.resolve();
    } catch (err) {
      // A database that is down fails every row alike: no point trying them one by one.
      if (batch.length === 1 || (err instanceof StorageError && err.transient)) {
        for (const p of batch) p.reject(err);
        return;
      }
      // One bad row must not cost the others their place: write them one by one.
      for (const p of batch) {
        this.#store.append(p.host, p.username, [p.entry]).then(() => {
          this.#stats.archiveWrites++;
          p.resolve();
        }, p.reject);
      }
    }
  }
}
