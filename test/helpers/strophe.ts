/**
 * Strophe.js as a real client in Node (WebSocket; BOSH once installXhr() has run), for
 * the scenarios that run over every browser transport.
 */
import { DOMAIN } from './server.js';

export const { Strophe, $msg, $pres, $iq } = await import('strophe.js');
Strophe.setLogLevel(Strophe.LogLevel.FATAL);

/**
 * A Strophe connection to `url` (ws:// or http://…/http-bind), logged in as `user` (with
 * `resource`, or the one the server gives when null), once CONNECTED. `onStatus` sees every
 * status change, before and after (a test that follows the connection's end).
 */
export async function stropheLogin(url: string, user: string, resource: string | null, password = 'secret', onStatus?: (status: number, conn: any) => void): Promise<any> {
  const conn = new Strophe.Connection(url);
  await new Promise<void>((resolve, reject) => {
    conn.connect(resource === null ? `${user}@${DOMAIN}` : `${user}@${DOMAIN}/${resource}`, password, (status: number) => {
      if (status === Strophe.Status.CONNECTED) resolve();
      else if (status === Strophe.Status.AUTHFAIL || status === Strophe.Status.CONNFAIL) reject(new Error(`status ${status}`));
      onStatus?.(status, conn);
    });
  });
  return conn;
}

/** The text of the body of the next message the connection receives. */
export function nextBody(conn: any): Promise<string> {
  return new Promise<string>((resolve) =>
    conn.addHandler(
      (m: any) => {
        resolve(m.getElementsByTagName('body')[0]?.textContent ?? '');
        return true;
      },
      null,
      'message',
    ),
  );
}
