/**
 * A small XMLHttpRequest over node:http, so Strophe.js can speak BOSH in Node the way it
 * does in a browser (keep-alive connections, a few requests in parallel). Only what
 * Strophe uses is here.
 */
import { Agent, request, type ClientRequest } from 'node:http';
import { DOMParser } from '@xmldom/xmldom';

const agent = new Agent({ keepAlive: true, maxSockets: 16 });

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
    const req = request(this.#url, { method: this.#method, agent, headers: { ...this.#headers, 'Content-Length': Buffer.byteLength(data) } }, (res) => {
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
