/**
 * The vCard module's table (XEP-0054, with the photo hash of XEP-0153): one vCard per
 * account. Added to the query layer's `Database` by declaration merging. Its migration
 * is the historic `0006_profiles`, which also created the PEP tables: the pep module
 * declares the same name for its own tables, and the two run as one migration.
 */
import type { SchemaPart } from '../../storage/migrations.js';

/** One vCard per account (XEP-0054), with the SHA-1 of its photo for XEP-0153. */
export interface VcardTable {
  host: string;
  username: string;
  /** The <vCard xmlns='vcard-temp'/> element as XML. */
  vcard: string;
  /** Lower-case hex SHA-1 of the PHOTO's binary data; '' when the vCard has no photo. */
  photo_hash: string;
  updated_at: number;
}

declare module '../../storage/schema.js' {
  interface Database {
    vcard: VcardTable;
  }
}

/** The vCard table and migration. */
export const vcardSchema: SchemaPart = {
  owner: 'vcard',
  migrations: (k) => ({
    '0006_profiles': {
      async up(db) {
        await k
          .table(db, 'vcard')
          .addColumn('host', k.key, (c) => c.notNull())
          .addColumn('username', k.key, (c) => c.notNull())
          .addColumn('vcard', k.longText, (c) => c.notNull())
          .addColumn('photo_hash', 'varchar(40)', (c) => c.notNull())
          .addColumn('updated_at', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint('vcard_pk', ['host', 'username'])
          .execute();
      },
    },
  }),
  userTables: [{ table: 'vcard', key: 'username' }],
};
