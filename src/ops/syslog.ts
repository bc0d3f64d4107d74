/**
 * A pino destination that sends each log record to syslog as RFC 5424.
 * References: https://www.rfc-editor.org/rfc/rfc5424 (format),
 *             https://www.rfc-editor.org/rfc/rfc5426 (UDP transport).
 *
 *   <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [parley@32473 key="value" ...] MSG
 *
 * PRI = facility * 8 + severity; severity from the pino level (trace and debug → 7 debug,
 * info → 6, warn → 4, error → 3, fatal → 2 crit). MSGID is the record's `module`. The
 * record's other fields go into one SD-ELEMENT (format `sd`, values of objects as JSON) or
 * the whole JSON record is the MSG (format `json`). 32473 is the enterprise number RFC 5612
 * reserves for examples: Parley has none of its own.
 *
 * Transports:
 * - `udp` (the default): one datagram per record to host:port (a local rsyslog or
 *   syslog-ng listening on UDP, or a remote collector).
 * - `unix`: the local socket (`/dev/log`) is a unix *datagram* socket, which Node cannot
 *   open without a native addon. Parley hands the lines to one long-lived `logger`
 *   process of util-linux (Debian's essential `bsdutils`), which writes them to the
 *   socket: priority per line (`--prio-prefix`), APP-NAME and PROCID fixed; MSGID and
 *   structured data cannot vary per line there, so the module and the fields go into the
 *   message text as `module: msg key=value ...`.
 */
import { createSocket, type Socket } from 'node:dgram';
import { spawn, type ChildProcess } from 'node:child_process';
import { hostname } from 'node:os';

export const FACILITIES = {
  kern: 0, user: 1, mail: 2, daemon: 3, auth: 4, syslog: 5, lpr: 6, news: 7, uucp: 8, cron: 9, authpriv: 10, ftp: 11,
  local0: 16, local1: 17, local2: 18, local3: 19, local4: 20, local5: 21, local6: 22, local7: 23,
} as const;
export type Facility = keyof typeof FACILITIES;

export const SD_ID = 'parley@32473';

/** pino's numeric level → syslog severity (RFC 5424 §6.2.1). */
export function severityOf(level: number): number {
  if (level >= 60) return 2; // fatal → critical
  if (level >= 50) return 3; // error
  if (level >= 40) return 4; // warning
  if (level >= 30) return 6; // informational
  return 7; // debug, trace
}

export interface SyslogOptions {
  transport: 'udp' | 'unix';
  host: string;
  port: number;
  path: string;
  facility: Facility;
  appName: string;
  format: 'sd' | 'json';
  /** Longest datagram, in bytes; a longer message is cut (RFC 5426 §3.2). */
  maxMessageSize: number;
}

const HOSTNAME = (hostname() || '-').replace(/[^\x21-\x7e]/g, '').slice(0, 255) || '-';
const BOM = '\ufeff';

/** SD-NAME: printable US-ASCII except = space ] ", at most 32 characters (RFC 5424 §6.3.3). */
function sdName(k: string): string {
  return k.replace(/[^\x21-\x7e]|[= \]"]/g, '_').slice(0, 32) || '_';
}

/** PARAM-VALUE: ", \ and ] escaped (RFC 5424 §6.3.3). */
function sdValue(v: unknown): string {
  const s = typeof v === 'string' ? v : JSON.stringify(v) ?? String(v);
  return s.replace(/[\\"\]]/g, (c) => '\\' + c);
}

function header(field: unknown, max: number): string {
  const s = typeof field === 'string' || typeof field === 'number' ? String(field) : '';
  const clean = s.replace(/[^\x21-\x7e]/g, '').slice(0, max);
  return clean === '' ? '-' : clean;
}

const OMITTED = new Set(['level', 'time', 'pid', 'hostname', 'msg', 'module']);

/** One pino record (parsed JSON) → one RFC 5424 line (no trailing newline). */
export function formatRfc5424(rec: Record<string, unknown>, o: Pick<SyslogOptions, 'facility' | 'appName' | 'format'>, pid = process.pid): string {
  const level = typeof rec.level === 'number' ? rec.level : 30;
  const pri = FACILITIES[o.facility] * 8 + severityOf(level);
  const time = typeof rec.time === 'string' ? rec.time : typeof rec.time === 'number' ? new Date(rec.time).toISOString() : new Date().toISOString();
  const head = `<${pri}>1 ${time} ${HOSTNAME} ${header(o.appName, 48)} ${header(pid, 128)} ${header(rec.module, 32)}`;
  const msg = typeof rec.msg === 'string' ? rec.msg : '';
  if (o.format === 'json') return `${head} - ${BOM}${JSON.stringify(rec)}`;
  const params: string[] = [];
  for (const [k, v] of Object.entries(rec)) {
    if (OMITTED.has(k) || v === undefined) continue;
    params.push(`${sdName(k)}="${sdValue(v)}"`);
  }
  const sd = params.length > 0 ? `[${SD_ID} ${params.join(' ')}]` : '-';
  return msg === '' ? `${head} ${sd}` : `${head} ${sd} ${BOM}${msg}`;
}

/** The line for the `logger` helper: `<PRI>module: msg key=value ...`. */
export function formatForLogger(rec: Record<string, unknown>, facility: Facility): string {
  const level = typeof rec.level === 'number' ? rec.level : 30;
  const parts: string[] = [];
  for (const [k, v] of Object.entries(rec)) {
    if (OMITTED.has(k) || v === undefined) continue;
    parts.push(`${k}=${typeof v === 'string' && !/[\s"]/.test(v) ? v : JSON.stringify(v)}`);
  }
  const mod = typeof rec.module === 'string' ? `${rec.module}: ` : '';
  return `<${FACILITIES[facility] * 8 + severityOf(level)}>${mod}${typeof rec.msg === 'string' ? rec.msg : ''}${parts.length ? ' ' + parts.join(' ') : ''}`.replace(/[\r\n]+/g, ' ');
}

function cut(line: string, max: number): Buffer {
  const b = Buffer.from(line, 'utf8');
  if (b.length <= max) return b;
  // Cut on a character boundary: back off continuation bytes (10xxxxxx).
  let end = max;
  while (end > 0 && (b[end]! & 0xc0) === 0x80) end--;
  return b.subarray(0, end);
}

/**
 * The destination: pino calls `write` with one JSON line per record. Sending never
 * throws and never blocks logging: a syslog that is down loses records (UDP semantics),
 * and the first error is reported once on stderr.
 */
export class SyslogDestination {
  readonly #o: SyslogOptions;
  #udp: Socket | null = null;
  #helper: ChildProcess | null = null;
  #warned = false;
  #closed = false;

  constructor(opts: SyslogOptions) {
    this.#o = opts;
    if (opts.transport === 'udp') {
      this.#udp = createSocket(opts.host.includes(':') ? 'udp6' : 'udp4');
      this.#udp.on('error', (e) => this.#warn(e));
      this.#udp.unref();
    } else {
      const h = spawn('logger', ['--socket', opts.path, '--socket-errors=on', '--prio-prefix', '--rfc5424=notq', '-t', opts.appName, `--id=${process.pid}`], {
        stdio: ['pipe', 'ignore', 'pipe'],
      });
      h.on('error', (e) => this.#warn(e));
      h.stderr?.on('data', (d: Buffer) => this.#warn(new Error(d.toString().trim())));
      h.stdin?.on('error', (e) => this.#warn(e));
      h.unref();
      (h.stdin as unknown as { unref?: () => void } | null)?.unref?.();
      this.#helper = h;
    }
  }

  write(chunk: string): boolean {
    if (this.#closed) return true;
    for (const line of chunk.split('\n')) {
      if (line === '') continue;
      let rec: Record<string, unknown>;
      try {
        rec = JSON.parse(line) as Record<string, unknown>;
      } catch {
        rec = { level: 30, msg: line };
      }
      if (this.#udp) {
        const msg = cut(formatRfc5424(rec, this.#o), this.#o.maxMessageSize);
        this.#udp.send(msg, this.#o.port, this.#o.host, (err) => {
          if (err) this.#warn(err);
        });
      } else {
        this.#helper?.stdin?.write(cut(formatForLogger(rec, this.#o.facility), this.#o.maxMessageSize).toString('utf8') + '\n');
      }
    }
    return true;
  }

  /** Stops sending (records written afterwards are dropped). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    // Give datagrams already queued a moment to leave.
    const udp = this.#udp;
    if (udp) setTimeout(() => udp.close(), 100).unref();
    this.#helper?.stdin?.end();
  }

  #warn(e: Error): void {
    if (this.#warned) return;
    this.#warned = true;
    process.stderr.write(`parley: syslog (${this.#o.transport === 'udp' ? `${this.#o.host}:${this.#o.port}` : this.#o.path}): ${e.message}; records may be lost\n`);
  }
}
