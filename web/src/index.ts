/**
 * The Parley chat widget: what a portal page embeds with one script tag.
 *
 * @example
 * <script src="https://chat.example.com/widget/parley-widget.js" defer
 *         data-service="https://chat.example.com/http-bind"
 *         data-prebind-url="/chat/prebind"></script>
 *
 * Options (data-* attributes of the script tag, or `window.parleyWidget = {...}` set
 * before it loads):
 * - `service`: BOSH URL (http[s]://…/http-bind; survives page navigation) or WebSocket
 *   URL (ws[s]://…/xmpp-websocket). Default: /http-bind on the script's origin.
 * - `prebindUrl`: the portal's endpoint (POST, with the portal's cookies) answering
 *   `{"jid", "sid", "rid"}` of a BOSH session made for the logged-in user.
 * - or `jid` + `token`: a portal login token (SASL PLAIN; needs TLS or listen.http.secure).
 * - or `jid` + `password`: a plain account (development).
 * - `user`: the bare JID the page expects; a saved session of another user is dropped.
 *
 * Styles: injected as a <style>, unless the page links the stylesheet itself, as a page
 * whose CSP forbids inline styles must:
 * <link id="parley-widget-css" rel="stylesheet" href="https://chat.example.com/widget/parley-widget.css">
 * The widget needs no inline script, no eval, and connects to the BOSH or WebSocket URL
 * (CSP connect-src) and to the prebind URL.
 */
import css from './widget.css?inline';
import { ChatClient, type Login } from './client.js';
import { clearState, emptyState, loadState, saveState } from './store.js';
import { WidgetView } from './view.js';

export interface WidgetOptions {
  service?: string;
  prebindUrl?: string;
  jid?: string;
  token?: string;
  password?: string;
  user?: string;
  /** Element to mount in (default: a new element at the end of <body>). */
  container?: HTMLElement;
}

export interface Widget {
  readonly client: ChatClient;
  readonly view: WidgetView;
  /** Ends the XMPP session and forgets this tab's chat state (call it on portal logout). */
  logout(): void;
}

const script = document.currentScript as HTMLScriptElement | null;

function optionsFromPage(): WidgetOptions {
  const d = script?.dataset ?? {};
  const global = (window as unknown as { parleyWidget?: WidgetOptions }).parleyWidget ?? {};
  return {
    service: d.service,
    prebindUrl: d.prebindUrl,
    jid: d.jid,
    token: d.token,
    password: d.password,
    user: d.user,
    ...global,
  };
}

function defaultService(): string {
  const origin = script?.src ? new URL(script.src, location.href).origin : location.origin;
  return `${origin}/http-bind`;
}

export function mount(opts: WidgetOptions): Widget {
  let login: Login;
  if (opts.prebindUrl) login = { kind: 'prebind', url: opts.prebindUrl };
  else if (opts.jid && opts.token) login = { kind: 'token', jid: opts.jid, token: opts.token };
  else if (opts.jid && opts.password) login = { kind: 'password', jid: opts.jid, password: opts.password };
  else throw new Error('parley widget: give prebindUrl, or jid and token');

  const expected = opts.user ?? (opts.jid ? opts.jid.split('/')[0] : undefined);
  const saved = loadState(expected);
  if (!saved) {
    clearState();
    // Another user's BOSH session must not be restored either.
    sessionStorage.removeItem('strophe-bosh-session');
  }
  const state = saved ?? emptyState(expected ?? '');

  // A page with a strict CSP links parley-widget.css itself (id="parley-widget-css"):
  // an injected <style> would be blocked there.
  if (!document.getElementById('parley-widget-css')) {
    document.head.append(Object.assign(document.createElement('style'), { id: 'parley-widget-css', textContent: css }));
  }
  let view: WidgetView | undefined;
  const client = new ChatClient(
    state,
    { service: opts.service ?? defaultService(), login },
    {
      changed: () => view?.render(),
      incoming: (peer, m) => view?.incoming(peer, m),
      typing: (peer) => view?.typing(peer),
      status: (s, detail) => view?.setConnection(s, detail),
    },
  );
  view = new WidgetView(state, client, () => saveState(state));
  (opts.container ?? document.body).append(view.root);
  view.render();
  client.start();
  return {
    client,
    view,
    logout() {
      client.stop();
      clearState();
    },
  };
}

function boot(): void {
  const opts = optionsFromPage();
  if (!opts.prebindUrl && !opts.token && !opts.password) return; // mounted by the page itself (Parley.mount)
  const w = mount(opts);
  (window as unknown as { Parley: unknown }).Parley = { ...w, mount };
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', boot);
else boot();
