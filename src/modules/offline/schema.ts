/**
 * The offline module's table (XEP-0160, XEP-0013): messages kept for an account until
 * it comes online, oldest first. Added to the query layer's `Database` by declaration
 * merging; the migrations keep the names they had before modules owned their tables.
 */
import type { Generated } from 'kysely';
import type { SchemaPart } from '../../storage/migrations.js';

export interface OfflineTable {
  id: Generated<number>;
  host: string;
  username: string;
  stanza: string;
  created_at: number;
  /** Identifies the message (see OfflineStore.push): stored once per key. */
  msg_key: string | null;
}

declare module '../../storage/schema.js' {
  interface Database {
    offline: OfflineTable;
  }
}

/** The offline queue's table and migrations. */
export const offlineSchema: SchemaPart = {
  owner: 'offline',
  migrations: (k) => ({
    '0003_offline': {
      async up(db) {
        await k
          .autoId(db, 'offline')
          .addColumn('host', k.key, (c) => c.notNull())
          .addColumn('username', k.key, (c) => c.notNull())
          .addColumn('stanza', k.longText, (c) => c.notNull())
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .execute();
        await k.index(db, 'offline_user', 'offline', ['host', 'username', 'id']);
      },
    },
    '0009_offline_key': {
      async up(db) {
        // What makes storing one message idempotent: a write retried after an ambiguous
        // failure, or the sender's resend after a "try again" error, stores it once.
        await db.schema.alterTable('offline').addColumn('msg_key', 'varchar(64)').execute();
        await k.index(db, 'offline_key', 'offline', ['host', 'username', 'msg_key']);
      },
    },
  }),
  userTables: [{ table: 'offline', key: 'id', dropId: true }],
};
