/**
 * Logs (issue 9, point 3): RFC 5424 syslog over UDP, levels per part changed by a reload,
 * and no passwords, tokens or message bodies in the logs unless log.sensitive.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { pino, type DestinationStream } from 'pino';
import { loadConfigFile } from '../src/config/load.js';
import { startServer, type RunningServer } from '../src/main.js';
import { openLogs } from '../src/ops/logs.js';
import { SyslogDestination, FACILITIES } from '../src/ops/syslog.js';
import { makeCredentials } from '../src/auth/credentials.js';
import { makeSelfSignedCertificate } from '../src/support/x509.js';
import { signLoginToken } from '../src/portal/tokens.js';
import { connectClient, xml } from './helpers/client.js';
import { DOMAIN } from './helpers/server.js';
import { CONFIG_SCHEMA } from '../src/modules/index.js';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Every JSON line the server logs, in memory. */
class Capture implements DestinationStream {
  readonly lines: string[] = [];
  write(s: string): void {
    this.lines.push(...s.split('\n').filter(Boolean));
  }
  get text(): string {
    return this.lines.join('\n');
  }
  records(): Array<Record<string, unknown>> {
    return this.lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  }
}

function tlsFiles(dir: string): { cert: string; key: string } {
  if (process.env.PARLEY_TEST_CERT && process.env.PARLEY_TEST_KEY) return { cert: process.env.PARLEY_TEST_CERT, key: process.env.PARLEY_TEST_KEY };
  process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
  const made = makeSelfSignedCertificate([DOMAIN, 'localhost']);
  writeFileSync(join(dir, 'cert.pem'), made.cert);
  writeFileSync(join(dir, 'key.pem'), made.key);
  return { cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') };
}

interface LogServer {
  server: RunningServer;
  file: string;
  capture: Capture;
  port: number;
  write(logYaml: string, extra?: string): void;
  stop(): Promise<void>;
}

/** A server started from a config file (so that reload reads it again), its logs captured. */
async function startLogServer(logYaml: string, extra = ''): Promise<LogServer> {
  const dir = mkdtempSync(join(tmpdir(), 'parley-logs-'));
  dirs.push(dir);
  const { cert, key } = tlsFiles(dir);
  const file = join(dir, 'parley.yaml');
  const write = (l: string, e = extra) =>
    writeFileSync(
      file,
      `domain: ${DOMAIN}\ndataDir: ${dir}\ntls: { cert: ${cert}, key: ${key} }\n` +
        `listen: { c2s: { port: 0 }, c2sTls: { enabled: false }, http: { port: 0 } }\n${l}\n${e}\n`,
    );
  write(logYaml);
  const { config } = loadConfigFile(file, CONFIG_SCHEMA);
  const capture = new Capture();
  const server = await startServer(config, { logs: openLogs(config.log, { stdout: capture }), configFile: file });
  for (const u of ['alice', 'bob']) await server.core.users.create(DOMAIN, u, await makeCredentials('Pa55-w0rd-never-logged'));
  return { server, file, capture, port: server.port('c2s'), write, stop: () => server.stop() };
}

test('the syslog destination sends RFC 5424 datagrams with PRI = facility * 8 + severity', async () => {
  const rx: Socket = createSocket('udp4');
  const got: string[] = [];
  await new Promise<void>((r) => rx.bind(0, '127.0.0.1', r));
  rx.on('message', (m) => got.push(m.toString('utf8')));
  const port = (rx.address() as AddressInfo).port;
  const dest = new SyslogDestination({ transport: 'udp', host: '127.0.0.1', port, path: '/dev/log', facility: 'local3', appName: 'parley', format: 'sd', maxMessageSize: 8192 });
  const log = pino({ level: 'trace', timestamp: pino.stdTimeFunctions.isoTime }, dest).child({ module: 'router' });
  log.debug('d');
  log.info({ user: 'alice', n: 3, quote: 'a "q" ]' }, 'hello');
  log.warn('w');
  log.error('e');
  log.fatal('f');
  for (let i = 0; i < 100 && got.length < 5; i++) await new Promise((r) => setTimeout(r, 20));
  dest.close();
  rx.close();
  assert.equal(got.length, 5);
  const line = /^<(\d+)>1 (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (\S+) parley (\d+) router (-|\[parley@32473( [^=\s\]"]+="(?:[^"\\\]]|\\["\\\]])*")+\])(?: \ufeff(.*))?$/s;
  const pris = got.map((g) => {
    const m = line.exec(g);
    assert.ok(m, `not RFC 5424: ${JSON.stringify(g)}`);
    assert.equal(m[4], String(process.pid));
    return Number(m[1]);
  });
  const f = FACILITIES.local3 * 8;
  assert.deepEqual(pris, [f + 7, f + 6, f + 4, f + 3, f + 2]);
  const info = got[1]!;
  assert.match(info, /\[parley@32473 user="alice" n="3" quote="a \\"q\\" \\]"\] \ufeffhello$/);
});

test('the unix transport (/dev/log style datagram socket) gets RFC 5424 lines with the right priority', async (t) => {
  // Node cannot open a unix datagram socket; the receiver is a small python3 program.
  const dir = mkdtempSync(join(tmpdir(), 'parley-devlog-'));
  dirs.push(dir);
  const sock = join(dir, 'log.sock');
  const rx = spawn('python3', ['-u', '-c', 'import socket,sys\ns=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM)\ns.bind(sys.argv[1])\nprint("ready",flush=True)\nwhile True:\n  print(s.recv(65536).decode("utf-8","replace").replace("\\n"," "),flush=True)', sock], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => rx.kill());
  const got: string[] = [];
  let buf = '';
  rx.stdout!.on('data', (d: Buffer) => {
    buf += d.toString('utf8');
    const lines = buf.split('\n');
    buf = lines.pop()!;
    got.push(...lines);
  });
  for (let i = 0; i < 200 && !got.includes('ready'); i++) await new Promise((r) => setTimeout(r, 20));
  assert.ok(got.includes('ready'), 'the python3 receiver did not start');
  const dest = new SyslogDestination({ transport: 'unix', host: '127.0.0.1', port: 514, path: sock, facility: 'local5', appName: 'parley', format: 'sd', maxMessageSize: 8192 });
  const log = pino({ level: 'info', timestamp: pino.stdTimeFunctions.isoTime }, dest).child({ module: 'bosh' });
  log.info({ sessions: 3 }, 'through the unix socket');
  log.error('an error line');
  for (let i = 0; i < 200 && got.length < 3; i++) await new Promise((r) => setTimeout(r, 20));
  dest.close();
  const lines = got.filter((g) => g !== 'ready');
  assert.equal(lines.length, 2, JSON.stringify(got));
  const f = FACILITIES.local5 * 8;
  assert.match(lines[0]!, new RegExp(`^<${f + 6}>1 \\S+ \\S+ parley ${process.pid} .*bosh.*through the unix socket.*sessions=3`));
  assert.match(lines[1]!, new RegExp(`^<${f + 3}>1 .*an error line`));
});

test('a server with log.destination syslog sends its records to a UDP receiver', async () => {
  const rx = createSocket('udp4');
  const got: string[] = [];
  await new Promise<void>((r) => rx.bind(0, '127.0.0.1', r));
  rx.on('message', (m) => got.push(m.toString('utf8')));
  const port = (rx.address() as AddressInfo).port;
  const s = await startLogServer(`log: { level: info, destination: syslog, syslog: { host: 127.0.0.1, port: ${port}, facility: daemon } }`);
  try {
    for (let i = 0; i < 100 && !got.some((g) => g.includes('Parley started')); i++) await new Promise((r) => setTimeout(r, 20));
    const started = got.find((g) => g.includes('Parley started'));
    assert.ok(started, `no "Parley started" record among ${got.length}`);
    assert.match(started, new RegExp(`^<${3 * 8 + 6}>1 \\S+ \\S+ parley ${process.pid} core \\[parley@32473 .*domain="${DOMAIN}".*\\] \ufeffParley started$`));
    assert.equal(s.capture.lines.length, 0, 'nothing on stdout with destination syslog');
  } finally {
    await s.stop();
    rx.close();
  }
});

test('levels per part apply, and a reload changes them', async () => {
  const s = await startLogServer('log: { level: info, modules: { c2s: debug } }');
  try {
    const a = await connectClient({ port: s.port, username: 'alice', password: 'Pa55-w0rd-never-logged' });
    await a.stop();
    const authenticated = () => s.capture.records().filter((r) => r.msg === 'authenticated');
    assert.equal(authenticated().length, 1);
    assert.equal(authenticated()[0]!.module, 'c2s');
    assert.equal(s.capture.records().filter((r) => r.level === 20 && r.module !== 'c2s').length, 0, 'other parts stay at info');

    s.write('log: { level: info, modules: { c2s: warn, router: debug } }');
    const r = await s.server.reload();
    assert.equal(r.ok, true, r.error);
    assert.deepEqual(r.applied, ['log.modules']);
    assert.equal(s.server.core.logs.for('c2s').level, 'warn');
    assert.equal(s.server.core.logs.for('router').level, 'debug');
    assert.equal(s.server.core.logs.for('roster').level, 'info');
    const b = await connectClient({ port: s.port, username: 'bob', password: 'Pa55-w0rd-never-logged' });
    await b.stop();
    assert.equal(authenticated().length, 1, 'c2s debug records stopped after the reload');
    assert.ok(s.capture.records().some((x) => x.msg === 'configuration reloaded'));
  } finally {
    await s.stop();
  }
});

const PASSWORD = 'Pa55-w0rd-never-logged';
const BODY = 'body-text-that-must-stay-private-1234';

async function sensitiveRun(sensitive: boolean): Promise<{ text: string; token: string }> {
  const secret = 'portal-secret-0123456789abcdef-0123';
  const s = await startLogServer(`log: { level: debug, sensitive: ${sensitive} }`, `portal: { secret: ${secret} }`);
  const token = signLoginToken(secret, DOMAIN, 'bob', Math.floor(Date.now() / 1000) + 600);
  try {
    const a = await connectClient({ port: s.port, username: 'alice', password: PASSWORD, mechanism: 'PLAIN', resource: 'a' });
    const b = await connectClient({ port: s.port, username: 'bob', password: token, mechanism: 'PLAIN', resource: 'b' });
    await a.send(xml('message', { to: `bob@${DOMAIN}/b`, type: 'chat', id: 'm1' }, xml('body', {}, BODY)));
    await b.message(`alice@${DOMAIN}`);
    // A part that logs an object with secrets in it: the keys are redacted.
    s.server.core.logs.for('portal').debug({ password: PASSWORD, request: { token, body: BODY }, headers: { authorization: `Bearer ${token}` } }, 'a careless record');
    await a.stop();
    await b.stop();
  } finally {
    await s.stop();
  }
  return { text: s.capture.text, token };
}

test('passwords, portal tokens and message bodies never reach the logs at debug level', async () => {
  const { text, token } = await sensitiveRun(false);
  assert.match(text, /"msg":"stanza in"/, 'stanzas are logged at debug (by kind and id)');
  assert.match(text, /"kind":"message".*"id":"m1"/);
  assert.match(text, /a careless record/);
  assert.match(text, /\[redacted\]/);
  for (const secret of [PASSWORD, token, BODY, Buffer.from(`\0alice\0${PASSWORD}`).toString('base64')]) {
    assert.equal(text.includes(secret), false, `found ${secret.slice(0, 12)}… in the logs`);
  }
});

test('with log.sensitive the stanza XML (the message body) is logged', async () => {
  const { text } = await sensitiveRun(true);
  assert.equal(text.includes(BODY), true);
  assert.equal(text.includes('[redacted]'), false);
});
