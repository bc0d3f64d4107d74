/** RosterStore on the SQL query layer (SQLite and MySQL alike). */
import type { Kysely, Selectable, Transaction } from 'kysely';
import type { RosterItem, Subscription } from './api.js';
import type { Database, RosterTable } from '../../storage/schema.js';
import type { Storage } from '../../storage/storage.js';
import type { RosterStore } from './store.js';

export class SqlRosterStore implements RosterStore {
  constructor(private readonly storage: Storage) {}

  list(host: string, username: string): Promise<RosterItem[]> {
    return this.storage.forUser(host, username, 'read roster', async (db) => {
      const rows = await db
        .selectFrom('roster')
        .selectAll()
        .where('host', '=', host)
        .where('username', '=', username)
        .orderBy('contact')
        .execute();
      return rows.map(fromRow);
    });
  }

  get(host: string, username: string, contact: string): Promise<RosterItem | null> {
    return this.storage.forUser(host, username, 'read roster item', async (db) => {
      const row = await getRow(db, host, username, contact);
      return row ? fromRow(row) : null;
    });
  }

  update(host: string, username: string, contact: string, change: (item: RosterItem | null) => RosterItem | null, maxItems?: number) {
    return this.storage.forUser(host, username, 'update roster', (db) =>
      db
        .transaction()
        .execute(async (tx) => {
          const row = await getRow(tx, host, username, contact);
          const before = row ? fromRow(row) : null;
          const after = change(before === null ? null : { ...before, groups: [...before.groups] });
          if (before === null && after !== null && maxItems !== undefined) {
            // Counted in the same transaction as the insert. Not thrown: the storage layer
            // would take an exception for a failed query.
            const r = await tx.selectFrom('roster').select((eb) => eb.fn.countAll<number>().as('n')).where('host', '=', host).where('username', '=', username).executeTakeFirst();
            if (Number(r?.n ?? 0) >= maxItems) return { before, after: null, version: -1, full: true };
          }
          if (after === null) {
            if (before !== null) await tx.deleteFrom('roster').where('host', '=', host).where('username', '=', username).where('contact', '=', contact).execute();
          } else {
            const values = toRow(host, username, contact, after);
            if (before === null) await tx.insertInto('roster').values(values).execute();
            else
              await tx
                .updateTable('roster')
                .set(values)
                .where('host', '=', host)
                .where('username', '=', username)
                .where('contact', '=', contact)
                .execute();
          }
          const version = await bumpVersion(tx, host, username);
          return { before, after, version, full: false };
        }),
      { idempotent: false },
    );
  }

  version(host: string, username: string): Promise<number> {
    return this.storage.forUser(host, username, 'read roster version', async (db) => {
      const r = await db
        .selectFrom('roster_version')
        .select('version')
        .where('host', '=', host)
        .where('username', '=', username)
        .executeTakeFirst();
      return Number(r?.version ?? 0);
    });
  }
}

function getRow(db: Kysely<Database> | Transaction<Database>, host: string, username: string, contact: string) {
  return db
    .selectFrom('roster')
    .selectAll()
    .where('host', '=', host)
    .where('username', '=', username)
    .where('contact', '=', contact)
    .executeTakeFirst();
}

async function bumpVersion(tx: Transaction<Database>, host: string, username: string): Promise<number> {
  const r = await tx.selectFrom('roster_version').select('version').where('host', '=', host).where('username', '=', username).executeTakeFirst();
  const next = Number(r?.version ?? 0) + 1;
  if (r) await tx.updateTable('roster_version').set({ version: next }).where('host', '=', host).where('username', '=', username).execute();
  else await tx.insertInto('roster_version').values({ host, username, version: next }).execute();
  return next;
}

function fromRow(r: Selectable<RosterTable>): RosterItem {
  let groups: string[] = [];
  try {
    const parsed: unknown = JSON.parse(r.groups);
    if (Array.isArray(parsed)) groups = parsed.filter((g): g is string => typeof g === 'string');
  } catch {
    groups = [];
  }
  return {
    jid: r.contact,
    name: r.name,
    subscription: r.subscription as Subscription,
    groups,
    askOut: Number(r.ask_out) === 1,
    askIn: Number(r.ask_in) === 1,
    askInStanza: r.ask_in_stanza,
    approved: Number(r.approved) === 1,
    inRoster: Number(r.in_roster) === 1,
  };
}

function toRow(host: string, username: string, contact: string, i: RosterItem): RosterTable {
  return {
    host,
    username,
    contact,
    name: i.name,
    subscription: i.subscription,
    ask_out: i.askOut ? 1 : 0,
    ask_in: i.askIn ? 1 : 0,
    ask_in_stanza: i.askInStanza,
    approved: i.approved ? 1 : 0,
    in_roster: i.inRoster ? 1 : 0,
    groups: JSON.stringify(i.groups),
  };
}
