/**
 * Runs a Parley server as a child process for benchmarks, controlled over IPC:
 *   → { cmd: 'mem' }   ← { mem: process.memoryUsage() after a full GC, cpu: cpuUsage }
 *   → { cmd: 'cpu' }   ← { cpu: cpuUsage }
 *   → { cmd: 'cluster' } ← { sessions: this node's sessions, cluster: ClusterNode.stats() or null }
 *   → { cmd: 'stop' }  ← { stopped: true }
 * Started with --expose-gc so memory figures are taken after collection.
 */
import { pino } from 'pino';
import { parseConfig } from '../../src/config/load.js';
import { startServer } from '../../src/main.js';
import { CONFIG_SCHEMA } from '../../src/modules/index.js';

const config = parseConfig(JSON.parse(process.argv[2]!), CONFIG_SCHEMA);
const server = await startServer(config, { log: pino({ level: 'warn' }) });
process.send!({ ready: true, port: server.port('c2s'), httpPort: server.listeners.http ? server.port('http') : undefined });

// A rejection stays unhandled (it ends the process), as it was with an async listener.
process.on('message', (msg: { cmd: string }) => void (async () => {
  if (msg.cmd === 'mem') {
    const gc = (globalThis as { gc?: () => void }).gc;
    for (let i = 0; i < 3; i++) {
      gc?.();
      await new Promise((r) => setTimeout(r, 50));
    }
    process.send!({ mem: process.memoryUsage(), cpu: process.cpuUsage(), sessions: server.core.sessions.size });
  } else if (msg.cmd === 'cpu') {
    process.send!({ cpu: process.cpuUsage() });
  } else if (msg.cmd === 'cluster') {
    process.send!({ sessions: server.core.sessions.size, cluster: server.cluster?.stats() ?? null });
  } else if (msg.cmd === 'stop') {
    await server.stop();
    process.send!({ stopped: true });
    process.exit(0);
  }
})());
