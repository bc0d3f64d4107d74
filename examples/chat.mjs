#!/usr/bin/env node
// A tiny terminal chat client on @xmpp/client, to try Parley by hand.
//   node examples/chat.mjs alice@localhost secret bob@localhost
// Lines you type go to the peer; what arrives is printed. /quit ends.
// It trusts the self-signed certificate Parley made in ./data/tls (or $PARLEY_CA).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';

const [jid, password, peer, service = 'xmpp://127.0.0.1:5222'] = process.argv.slice(2);
if (!jid || !password || !peer) {
  console.error('usage: node examples/chat.mjs JID PASSWORD PEER_JID [xmpp://host:port]');
  process.exit(1);
}
const [username, domain] = jid.split('@');

// Node reads extra CA certificates only at start-up: re-run with Parley's one set.
const ca = process.env.PARLEY_CA ?? `data/tls/${domain}.crt`;
if (!process.env.PARLEY_CHAT_CHILD && existsSync(ca)) {
  const env = { ...process.env, NODE_EXTRA_CA_CERTS: ca, PARLEY_CHAT_CHILD: '1' };
  const child = spawn(process.execPath, process.argv.slice(1), { stdio: 'inherit', env });
  child.on('exit', (code) => process.exit(code ?? 0));
} else {
  const { client, xml } = await import('@xmpp/client');
  const xmpp = client({ service, domain, username, password, resource: 'chat' });
  xmpp.reconnect.stop();
  xmpp.on('error', (e) => console.error('error:', e.condition ?? e.message));
  xmpp.on('stanza', (s) => {
    if (s.is('message') && s.getChildText('body')) {
      const delay = s.getChild('delay', 'urn:xmpp:delay');
      console.log(`${s.attrs.from}: ${s.getChildText('body')}${delay ? ` (sent ${delay.attrs.stamp}, while you were offline)` : ''}`);
    }
    else if (s.is('presence')) console.log(`* ${s.attrs.from} is ${s.attrs.type ?? s.getChildText('show') ?? 'available'}`);
  });
  let address;
  try {
    address = await xmpp.start();
  } catch (e) {
    console.error(`cannot log in: ${e.condition ?? e.message}`);
    if (e.code === 'DEPTH_ZERO_SELF_SIGNED_CERT') console.error(`(run it from Parley's directory, or set PARLEY_CA to the certificate in data/tls)`);
    process.exit(1);
  }
  console.log(`online as ${address}; type messages for ${peer}`);
  await xmpp.send(xml('presence'));
  const rl = createInterface({ input: process.stdin });
  rl.on('line', async (line) => {
    if (line === '/quit') {
      await xmpp.stop();
      process.exit(0);
    }
    await xmpp.send(xml('message', { to: peer, type: 'chat' }, xml('body', {}, line)));
  });
  rl.on('close', async () => {
    await xmpp.stop().catch(() => {});
    process.exit(0);
  });
}
