/**
 * The server's logs from the `log` configuration: JSON lines on stdout, RFC 5424 syslog
 * (src/ops/syslog.ts), or both.
 */
import { pino, type DestinationStream } from 'pino';
import type { Config } from '../config/schema.js';
import { createLogs, type Logs } from '../support/logger.js';
import { SyslogDestination } from './syslog.js';

export interface OpenLogsOptions {
  /** Where the JSON lines go instead of stdout (tests). */
  stdout?: DestinationStream;
}

export function openLogs(c: Config['log'], opts: OpenLogsOptions = {}): Logs {
  const settings = { level: c.level, modules: c.modules, sensitive: c.sensitive };
  const stdout = () => opts.stdout ?? pino.destination(1);
  if (c.destination === 'stdout') return createLogs(settings, { destination: stdout() });
  const syslog = new SyslogDestination(c.syslog);
  const destination: DestinationStream =
    c.destination === 'syslog' ? syslog : pino.multistream([{ stream: stdout(), level: 'trace' }, { stream: syslog, level: 'trace' }]);
  return createLogs(settings, { destination, close: () => syslog.close() });
}
