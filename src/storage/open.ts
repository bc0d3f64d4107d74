/** Opens the storage backend the configuration names. */
import { resolve } from 'node:path';
import type { Config } from '../config/schema.js';
import { openSqlite } from './sqlite.js';
import type { Storage } from './storage.js';

export function openStorage(config: Config): Promise<Storage> {
  switch (config.storage.driver) {
    case 'sqlite': {
      const file = config.storage.sqlite.file === ':memory:' ? ':memory:' : resolve(config.dataDir, config.storage.sqlite.file);
      return openSqlite({ file, busyTimeoutMs: config.storage.sqlite.busyTimeout });
    }
  }
}
