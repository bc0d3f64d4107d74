/** `parley user ...`: account administration straight on the store. */
import type { Config } from '../config/schema.js';
import { ConfigError } from '../support/errors.js';
import { Jid, JidError } from '../xmpp/jid.js';
import { openStorage } from '../storage/open.js';
import { MODULE_SCHEMAS } from '../modules/index.js';
import { SqlUserStore } from '../auth/user-store-sql.js';
import { makeCredentials } from '../auth/credentials.js';

/** "name" or "name@domain" → the localpart, checked against the served domain. */
export function accountName(arg: string | undefined, domain: string): string {
  if (!arg) throw new ConfigError('', 'a JID is required');
  let jid: Jid;
  try {
    jid = arg.includes('@') ? Jid.parse(arg) : Jid.of(arg, domain);
  } catch (e) {
    if (e instanceof JidError) throw new ConfigError('', `"${arg}" is not a valid JID: ${e.message}`);
    throw e;
  }
  if (jid.domain !== domain) throw new ConfigError('', `${arg}: this server serves ${domain}`);
  if (jid.resource !== '') throw new ConfigError('', `${arg}: give a bare JID, without a resource`);
  return jid.local;
}

export async function userCommand(
  config: Config,
  args: string[],
  opts: { prefix?: string; count?: string; start?: string; password?: string },
): Promise<number> {
  const [sub, jidArg, password] = args;
  const domain = config.domain;
  const storage = await openStorage(config, MODULE_SCHEMAS);
  const users = new SqlUserStore(storage);
  try {
    switch (sub) {
      case 'add': {
        const name = accountName(jidArg, domain);
        if (password === undefined) throw new ConfigError('', 'usage: parley user add JID PASSWORD');
        const created = await users.create(domain, name, await makeCredentials(password));
        if (!created) {
          console.error(`${name}@${domain} already exists`);
          return 1;
        }
        console.log(`created ${name}@${domain}`);
        return 0;
      }
      case 'del': {
        const name = accountName(jidArg, domain);
        if (!(await users.delete(domain, name))) {
          console.error(`${name}@${domain} does not exist`);
          return 1;
        }
        console.log(`deleted ${name}@${domain}`);
        return 0;
      }
      case 'passwd': {
        const name = accountName(jidArg, domain);
        if (password === undefined) throw new ConfigError('', 'usage: parley user passwd JID PASSWORD');
        if (!(await users.setCredentials(domain, name, await makeCredentials(password)))) {
          console.error(`${name}@${domain} does not exist`);
          return 1;
        }
        console.log(`password changed for ${name}@${domain}`);
        return 0;
      }
      case 'list': {
        let after: string | undefined;
        for (;;) {
          const page = await users.list(domain, { after, limit: 1000 });
          for (const u of page) console.log(`${u}@${domain}`);
          if (page.length < 1000) break;
          after = page[page.length - 1];
        }
        return 0;
      }
      case 'bulk':
        return await bulk(users, domain, opts);
      default:
        console.error('usage: parley user add|del|passwd|list|bulk ...');
        return 1;
    }
  } finally {
    await storage.close();
  }
}

/**
 * Creates prefix1..prefixN. Each account still gets its own salts; key derivation runs
 * on the thread pool in parallel, and inserts go in batched transactions.
 */
async function bulk(users: SqlUserStore, domain: string, opts: { prefix?: string; count?: string; start?: string; password?: string }): Promise<number> {
  const prefix = opts.prefix ?? 'user';
  const count = Number(opts.count);
  const first = opts.start === undefined ? 1 : Number(opts.start);
  if (!Number.isInteger(count) || count < 1) throw new ConfigError('', '--count must be a positive integer');
  if (!Number.isInteger(first) || first < 0) throw new ConfigError('', '--start must be a non-negative integer');
  if (opts.password === undefined) throw new ConfigError('', '--password is required');
  accountName(`${prefix}${first}`, domain);
  const t0 = Date.now();
  let created = 0;
  const BATCH = 1000;
  for (let i = 0; i < count; i += BATCH) {
    const n = Math.min(BATCH, count - i);
    const batch = await Promise.all(
      Array.from({ length: n }, async (_, k) => ({ username: `${prefix}${first + i + k}`.toLowerCase(), creds: await makeCredentials(opts.password!) })),
    );
    created += await users.createMany(domain, batch);
    process.stderr.write(`\r${i + n}/${count}`);
  }
  process.stderr.write('\n');
  console.log(`created ${created} of ${count} accounts (${prefix}${first}..${prefix}${first + count - 1}@${domain}) in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return 0;
}
