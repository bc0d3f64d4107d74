/**
 * Logs: structured JSON (pino) to stdout, or RFC 5424 syslog (src/ops/syslog.ts), with a
 * level per part of the server and redaction of secrets.
 *
 * Every part that logs takes its logger from `Logs.for(name)`: a pino child with a
 * `module` binding (`router`, `c2s`, `bosh`, `cluster`, `storage`, a module's name...).
 * The level of each child comes from `log.modules[name]`, or `log.level`; `configure()`
 * changes them at run time (reload), since pino children keep their own level.
 *
 * SECURITY: passwords, tokens, secrets, authorization headers, message bodies and stanza
 * XML are redacted by key wherever they appear in a log record (top level or one level
 * down), unless `log.sensitive` is on (debugging). Call sites that could log a stanza log
 * its kind and id instead, and the XML only when `Logs.sensitive` says so.
 */
import { pino, type Logger, type LevelWithSilent, type DestinationStream } from 'pino';

export type LogLevel = LevelWithSilent;
export const LOG_LEVELS: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

export interface LogSettings {
  level: LogLevel;
  modules: Record<string, LogLevel>;
  sensitive: boolean;
}

/** Keys whose values never reach a log unless `log.sensitive` is on. */
export const REDACTED_KEYS = ['password', 'token', 'secret', 'authorization', 'cookie', 'body', 'stanza', 'xml', 'payload'] as const;

/** pino redact paths: each key at the top level, one level down, and in request headers. */
export function redactPaths(): string[] {
  const out: string[] = [];
  for (const k of REDACTED_KEYS) out.push(k, `*.${k}`);
  out.push('headers.authorization', '*.headers.authorization', 'headers.cookie', '*.headers.cookie');
  return out;
}

export class Logs {
  /** The logger of the server core (binding `module: core`). */
  readonly root: Logger;
  readonly #base: Logger;
  readonly #children = new Map<string, Logger>();
  #settings: LogSettings;
  readonly #close: (() => void) | undefined;

  constructor(base: Logger, settings: LogSettings, close?: () => void) {
    this.#base = base;
    this.#close = close;
    this.#settings = { ...settings, modules: { ...settings.modules } };
    this.root = this.for('core');
  }

  /** Secrets and message bodies may be logged (debugging only). */
  get sensitive(): boolean {
    return this.#settings.sensitive;
  }

  get settings(): LogSettings {
    return { ...this.#settings, modules: { ...this.#settings.modules } };
  }

  /** The logger of one part or module; the same object for the same name. */
  for(name: string): Logger {
    let l = this.#children.get(name);
    if (!l) {
      l = this.#base.child({ module: name });
      l.level = this.levelOf(name);
      this.#children.set(name, l);
    }
    return l;
  }

  /** Flushes and closes the destinations this object opened (syslog). */
  close(): void {
    try {
      this.#base.flush();
    } catch {
      // a destination that cannot flush (closed stdout) has nothing more to say
    }
    this.#close?.();
  }

  levelOf(name: string): LogLevel {
    return this.#settings.modules[name] ?? this.#settings.level;
  }

  /**
   * Applies new levels to every logger made so far (and those made later). Returns the
   * names whose level changed. `sensitive` is fixed at startup (redaction is compiled).
   */
  configure(next: Pick<LogSettings, 'level' | 'modules'>): string[] {
    this.#settings = { ...this.#settings, level: next.level, modules: { ...next.modules } };
    const changed: string[] = [];
    for (const [name, l] of this.#children) {
      const want = this.levelOf(name);
      if (l.level !== want) {
        l.level = want;
        changed.push(name);
      }
    }
    return changed;
  }
}

export interface CreateLogsOptions {
  /** Where the JSON lines go (default: stdout). */
  destination?: DestinationStream;
  /** Called by Logs.close() (closes the destination). */
  close?: () => void;
}

/** The server's logs from the `log` settings. */
export function createLogs(settings: LogSettings, opts: CreateLogsOptions = {}): Logs {
  const base = pino(
    {
      level: 'trace', // the children carry the real levels
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: settings.sensitive ? undefined : { paths: redactPaths(), censor: '[redacted]' },
    },
    opts.destination ?? pino.destination(1),
  );
  return new Logs(base, settings, opts.close);
}

/** A logger with one level (tools and tests that need no per-module levels). */
export function createLogger(level: LevelWithSilent): Logger {
  return pino({ level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime, redact: { paths: redactPaths(), censor: '[redacted]' } });
}

export type { Logger };
