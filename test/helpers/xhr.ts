/**
 * A small XMLHttpRequest over node:http, so Strophe.js can speak BOSH in Node the way it
 * does in a browser (keep-alive connections, a few requests in parallel). Only what
 * Strophe uses is here.
 */
import { Agent, request, type ClientRequest } from 'node:http';
import { DOMParser } from '@xmldom/xmldom';

const agent = new Agent({ keepAlive: true, maxSockets: 16 });

/**
 * Cookies, as a browser keeps them, by request URL (query string included: clients that
 * must not share cookies, like two browser profiles, add a distinct ?query to the URL).
 * haproxy's sticky BOSH cookie needs them.
 */
const jar = new Map<string, Map<string, string>>();

/** Forgets the cookies of a URL (a new browser profile). */
export function clearCookies(url: string): void {
  jar.delete(url);
}

/** The cookies kept for a URL, name → value. */
export function cookiesOf(url: string): Record<string, string> {
  return Object.fromEntries(jar.get(url) ?? []);
}

export class NodeXhr {
  readyState = 0;
  status = 0;
  responseText = '';
  /** Like a browser, an XML response is also offered parsed. */
  responseXML: unknown = null;
  withCredentials = false;
  onreadystatechange: (() => void) | null = null;
  #method = 'GET';
  #url = '';
  #headers: Record<string, string> = {};
  #responseHeaders = '';
  #req: ClientRequest | null = null;
  #aborted = false;

  overrideMimeType(_type: string): void {}

  open(method: string, url: string): void {
    this.#method = method;
    this.#url = url;
    this.#set(1);
  }

  setRequestHeader(name: string, value: string): void {
    this.#headers[name] = value;
  }

  getAllResponseHeaders(): string {
    return this.#responseHeaders;
  }

  send(body?: string): void {
    const data = body ?? '';
    const url = this.#url;
    const cookies = jar.get(url);
    const cookie = cookies && cookies.size > 0 ? { Cookie: [...cookies].map(([k, v]) => `${k}=${v}`).join('; ') } : {};
    const req = request(url, { method: this.#method, agent, headers: { ...this.#headers, ...cookie, 'Content-Length': Buffer.byteLength(data) } }, (res) => {
      for (const sc of res.headers['set-cookie'] ?? []) {
        const [pair] = sc.split(';');
        const eq = pair!.indexOf('=');
        if (eq <= 0) continue;
        let m = jar.get(url);
        if (!m) jar.set(url, (m = new Map()));
        m.set(pair!.slice(0, eq).trim(), pair!.slice(eq + 1).trim());
      }
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        if (this.#aborted) return;
        this.status = res.statusCode ?? 0;
        this.#responseHeaders = Object.entries(res.headers)
          .map(([k, v]) => `${k}: ${String(v)}`)
          .join('\r\n');
        this.responseText = Buffer.concat(chunks).toString('utf8');
        if (/xml/.test(String(res.headers['content-type'])) && this.responseText !== '') {
          try {
            this.responseXML = new DOMParser().parseFromString(this.responseText, 'text/xml');
          } catch {
            this.responseXML = null;
          }
        }
        this.#set(4);
      });
    });
    req.on('error', () => {
      if (this.#aborted) return;
      this.status = 0;
      this.#set(4);
    });
    this.#req = req;
    req.end(data);
  }

  abort(): void {
    this.#aborted = true;
    this.#req?.destroy();
  }

  #set(state: number): void {
    this.readyState = state;
    this.onreadystatechange?.();
  }
}

/** Makes XMLHttpRequest available to libraries that expect a browser. */
export function installXhr(): void {
  (globalThis as { XMLHttpRequest?: unknown }).XMLHttpRequest = NodeXhr;
}
