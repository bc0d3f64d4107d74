/**
 * The private MariaDB helper: committed rows survive a SIGKILL and restart on the same
 * port, and a frozen (SIGSTOPped) server times queries out until it is thawed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import mysql from 'mysql2/promise';
import { startPrivateMariadb } from './mariadb-server.js';
import { needMariadbd } from './tools.js';

test('a private MariaDB can be killed, restarted with its data, frozen and thawed', { skip: needMariadbd() }, async (t) => {
  const t0 = Date.now();
  const db = await startPrivateMariadb();
  t.diagnostic(`started in ${Date.now() - t0} ms on port ${db.port}`);
  const options = { host: db.host, port: db.port, user: 'root', password: '', connectTimeout: 2000 };
  try {
    const conn = await mysql.createConnection(options);
    await conn.query('CREATE DATABASE crashy');
    await conn.query('CREATE TABLE crashy.t (id INT PRIMARY KEY, v VARCHAR(20)) ENGINE=InnoDB');
    await conn.query("INSERT INTO crashy.t VALUES (1, 'survives')"); // autocommit
    await conn.end();

    await db.kill();
    await assert.rejects(mysql.createConnection(options), /ECONNREFUSED/);

    const t1 = Date.now();
    await db.restart();
    t.diagnostic(`restarted in ${Date.now() - t1} ms`);
    const again = await mysql.createConnection(options);
    const [rows] = await again.query('SELECT v FROM crashy.t WHERE id = 1');
    assert.deepEqual(rows, [{ v: 'survives' }]);

    db.freeze();
    try {
      await assert.rejects(again.query({ sql: 'SELECT 1', timeout: 300 }), /timeout/i);
    } finally {
      db.thaw();
    }
    again.destroy();
    const thawed = await mysql.createConnection(options);
    const [one] = await thawed.query({ sql: 'SELECT 1 AS one', timeout: 2000 });
    assert.deepEqual(one, [{ one: 1 }]);
    await thawed.end();
  } finally {
    await db.destroy();
    await db.destroy(); // idempotent
  }
  assert.equal(existsSync(db.dataDir), false);
});
