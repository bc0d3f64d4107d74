/**
 * In-band registration (XEP-0077) of the test users, for servers that allow it on
 * loopback (the peers in bench/peers are configured so). An existing account
 * (`conflict`) counts as done.
 */
import { connect } from 'node:net';
import { XmlStreamParser } from '../src/xml/parser.js';
import type { XmlElement } from '../src/xml/element.js';
import type { Scenario } from './scenario.js';

function registerOne(sc: Scenario, name: string): Promise<'created' | 'exists'> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: sc.host, port: sc.tcpPort });
    const done = (err: Error | null, r?: 'created' | 'exists') => {
      s.destroy();
      if (err) reject(err);
      else resolve(r!);
    };
    const parser = new XmlStreamParser(
      {
        onStreamStart: () => undefined,
        onElement: (el: XmlElement) => {
          if (el.localName === 'features') {
            s.write(
              `<iq type='set' id='reg' to='${sc.domain}'><query xmlns='jabber:iq:register'><username>${name}</username><password>${sc.password}</password></query></iq>`,
            );
          } else if (el.name === 'iq' && el.attrs.id === 'reg') {
            if (el.attrs.type === 'result') done(null, 'created');
            else {
              const cond = el.getChild('error')?.elements().find((e) => e.name !== 'text')?.name ?? 'error';
              if (cond === 'conflict') done(null, 'exists');
              else done(new Error(`registering ${name}: ${cond}`));
            }
          }
        },
        onStreamEnd: () => done(new Error(`registering ${name}: stream closed`)),
        onError: (c) => done(new Error(`registering ${name}: ${c}`)),
      },
      { limits: { maxStanzaBytes: 1 << 20, maxDepth: 64, maxAttributes: 256, maxNameLength: 512 } },
    );
    s.on('data', (d: Buffer) => parser.write(d));
    s.on('error', (e) => done(e));
    s.on('connect', () =>
      s.write(`<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='${sc.domain}' version='1.0'>`),
    );
  });
}

export async function registerUsers(sc: Scenario, progress?: (line: string) => void): Promise<{ created: number; existing: number; seconds: number }> {
  const t0 = Date.now();
  let next = 0;
  let created = 0;
  let existing = 0;
  const worker = async () => {
    while (next < sc.users) {
      const i = next++;
      const r = await registerOne(sc, `${sc.prefix}${sc.first + i}`);
      if (r === 'created') created++;
      else existing++;
      if ((created + existing) % 500 === 0) progress?.(`[register] ${created + existing}/${sc.users}`);
    }
  };
  await Promise.all(Array.from({ length: 50 }, worker));
  return { created, existing, seconds: (Date.now() - t0) / 1000 };
}
