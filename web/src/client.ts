/**
 * The widget's XMPP side, on Strophe.js.
 *
 * References:
 * - RFC 6121 (roster, presence, messages)
 * - XEP-0124 / XEP-0206 (BOSH; Strophe's `keepalive` keeps sid/rid in sessionStorage so a
 *   new page re-attaches to the same session: no new login, no presence flap)
 * - XEP-0085 chat states, XEP-0186 invisible command, XEP-0280 carbons
 * - XEP-0313 MAM v2 with XEP-0059 RSM (history and the catch-up after a reconnect)
 * - XEP-0359 stanza ids (dedup of live, offline and archived copies of a message)
 *
 * A session that fails (terminated, unknown to a restarted server, unreachable) is
 * replaced with backoff: a new prebind (or login), the roster, initial presence, then
 * the archive from the last message shown.
 */
import { $iq, $msg, $pres, Strophe } from 'strophe.js';
import { addMessage, chatOf, type ChatMessage, type ConnectionState, type MyShow, type WidgetState } from './store.js';

export const NS = {
  ROSTER: 'jabber:iq:roster',
  CHATSTATES: 'http://jabber.org/protocol/chatstates',
  MAM: 'urn:xmpp:mam:2',
  RSM: 'http://jabber.org/protocol/rsm',
  FORWARD: 'urn:xmpp:forward:0',
  DELAY: 'urn:xmpp:delay',
  SID: 'urn:xmpp:sid:0',
  INVISIBLE: 'urn:xmpp:invisible:0',
  CARBONS: 'urn:xmpp:carbons:2',
  DATA: 'jabber:x:data',
  LAST: 'jabber:iq:last',
} as const;

export type Login =
  | { kind: 'prebind'; url: string }
  | { kind: 'token'; jid: string; token: string }
  | { kind: 'password'; jid: string; password: string };

export interface ClientOptions {
  /** BOSH (http…) or WebSocket (ws…) URL. */
  service: string;
  login: Login;
  /** Backoff bounds for reconnecting, in ms. */
  minRetryMs?: number;
  maxRetryMs?: number;
}

export interface ClientEvents {
  /** The state changed (contacts, presence, chats): re-render. */
  changed(): void;
  /** A new incoming message was added (not a duplicate, not history). */
  incoming(peer: string, m: ChatMessage): void;
  typing(peer: string, isTyping: boolean): void;
  status(state: ConnectionState, detail?: string): void;
}

type Conn = InstanceType<typeof Strophe.Connection>;
/** Where an archived message came from: its MAM result id and time; history (an opened chat) or a catch-up. */
interface Archived {
  id: string;
  stamp: string | null;
  isHistory: boolean;
}
type Status = number;

const HISTORY_PAGE = 30;
const CATCHUP_PAGE = 50;
/** XEP-0085 §5.2: "paused" after a few seconds without typing. */
const PAUSED_AFTER_MS = 5000;

let counter = 0;
const nextId = (prefix: string) => `${prefix}${Date.now().toString(36)}${(++counter).toString(36)}`;

export class ChatClient {
  #conn: Conn | null = null;
  #intentional = false;
  #attempt = 0;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #online = false;
  #outbox: Element[] = [];
  /** Contacts whose last activity was asked on this connection. */
  #askedLast = new Set<string>();
  #composing = new Map<string, ReturnType<typeof setTimeout>>();
  /** Contacts currently shown as typing, with a safety timer (a lost "paused"). */
  readonly typing = new Map<string, ReturnType<typeof setTimeout>>();

  constructor(
    readonly state: WidgetState,
    readonly opts: ClientOptions,
    readonly events: ClientEvents,
  ) {}

  get isOnline(): boolean {
    return this.#online;
  }

  get isBosh(): boolean {
    return !/^wss?:/i.test(this.opts.service);
  }

  /** Re-attaches to this tab's BOSH session when there is one, else logs in. */
  start(): void {
    this.#intentional = false;
    if (this.isBosh) {
      const conn = this.#newConnection();
      try {
        conn.restore(undefined, (status: Status, cond: string | null) => this.#onStatus(conn, status, cond));
        return;
      } catch {
        // No restorable session in this tab: a fresh login below.
      }
    }
    void this.#login();
  }

  /** Ends the session for good (logout): unavailable presence, terminate, state kept by the caller. */
  stop(): void {
    this.#intentional = true;
    clearTimeout(this.#retryTimer);
    const conn = this.#conn;
    this.#conn = null;
    this.#online = false;
    if (conn) {
      // COMPAT(Strophe.js): a logout is usually followed at once by a page load, which
      // aborts Strophe's own terminate request; a beacon outlives the page. It needs the
      // session's sid and next rid, which Strophe keeps in its private BOSH object.
      const proto = (conn as unknown as { _proto?: { sid?: string | null; rid?: number } })._proto;
      if (this.isBosh && proto?.sid && proto.rid && typeof navigator.sendBeacon === 'function') {
        const body = `<body xmlns='http://jabber.org/protocol/httpbind' type='terminate' rid='${proto.rid}' sid='${escapeAttr(proto.sid)}'><presence xmlns='jabber:client' type='unavailable'/></body>`;
        navigator.sendBeacon(this.opts.service, new Blob([body], { type: 'text/plain;charset=UTF-8' }));
        conn.reset();
      } else {
        conn.flush();
        conn.disconnect('logout');
      }
    }
    sessionStorage.removeItem('strophe-bosh-session');
  }

  async #login(): Promise<void> {
    clearTimeout(this.#retryTimer);
    this.events.status(this.#attempt === 0 ? 'connecting' : 'reconnecting');
    const login = this.opts.login;
    const conn = this.#newConnection(login.kind === 'token');
    const cb = (status: Status, cond: string | null) => this.#onStatus(conn, status, cond);
    try {
      if (login.kind === 'prebind') {
        const res = await fetch(login.url, { method: 'POST', credentials: 'include', headers: { Accept: 'application/json' } });
        if (res.status === 401 || res.status === 403) {
          this.events.status('failed', 'not logged in to the portal');
          return;
        }
        if (!res.ok) throw new Error(`prebind: HTTP ${res.status}`);
        const { jid, sid, rid } = (await res.json()) as { jid: string; sid: string; rid: number };
        if (this.#conn !== conn) return; // stopped meanwhile
        conn.attach(jid, sid, rid, cb);
      } else if (login.kind === 'token') {
        conn.connect(login.jid, login.token, cb);
      } else {
        conn.connect(login.jid, login.password, cb);
      }
    } catch (e) {
      this.#retry(e instanceof Error ? e.message : String(e));
    }
  }

  #newConnection(plainOnly = false): Conn {
    const old = this.#conn;
    if (old) {
      old.reset();
    }
    // A portal token is a password only PLAIN can carry (SCRAM needs the real one).
    const mechanisms = plainOnly ? [Strophe.SASLPlain] : undefined;
    const conn = new Strophe.Connection(this.opts.service, { keepalive: true, ...(mechanisms ? { mechanisms } : {}) });
    this.#conn = conn;
    return conn;
  }

  #onStatus(conn: Conn, status: Status, cond: string | null): void {
    if (conn !== this.#conn) return; // an old connection's last words
    const S = Strophe.Status;
    switch (status) {
      case S.CONNECTED:
      case S.ATTACHED:
        void this.#ready(conn, conn.restored === true);
        break;
      case S.AUTHFAIL:
        if (this.opts.login.kind === 'password') {
          this.events.status('failed', 'wrong user name or password');
          this.#intentional = true;
        }
        break;
      case S.CONNFAIL:
      case S.ATTACHFAIL:
      case S.CONNTIMEOUT:
        this.#lastCondition = cond ?? undefined;
        break;
      case S.DISCONNECTED:
        this.#online = false;
        if (this.#intentional) this.events.status('offline');
        else this.#retry(this.#lastCondition ?? cond ?? 'disconnected');
        this.#lastCondition = undefined;
        break;
    }
  }

  #lastCondition: string | undefined;

  #retry(reason: string): void {
    this.#online = false;
    if (this.#intentional) return;
    const min = this.opts.minRetryMs ?? 1000;
    const max = this.opts.maxRetryMs ?? 30_000;
    const base = Math.min(max, min * 2 ** this.#attempt);
    const delay = Math.round(base / 2 + (Math.random() * base) / 2);
    this.#attempt++;
    // The old session is gone: contacts' presence will be sent again after our initial presence.
    for (const c of Object.values(this.state.contacts)) c.resources = {};
    this.#clearTyping();
    this.events.changed();
    this.events.status('reconnecting', `${reason}; retrying in ${Math.ceil(delay / 1000)} s`);
    clearTimeout(this.#retryTimer);
    this.#retryTimer = setTimeout(() => void this.#login(), delay);
  }

  /** Reconnects at once (a "retry now" button). */
  retryNow(): void {
    if (this.#online) return;
    this.#intentional = false;
    void this.#login();
  }

  async #ready(conn: Conn, restored: boolean): Promise<void> {
    this.#askedLast.clear();
    this.#online = true;
    this.#attempt = 0;
    const bare = Strophe.getBareJidFromJid(conn.jid);
    if (bare !== this.state.jid) {
      // Another user in this tab: nothing of the old state applies.
      Object.assign(this.state, { jid: bare, contacts: {}, chats: {}, open: [], lastArchiveId: null });
    }
    conn.addHandler((m: Element) => this.#onMessage(m), null, 'message', null, null);
    conn.addHandler((p: Element) => this.#onPresence(p), null, 'presence', null, null);
    conn.addHandler((iq: Element) => this.#onRosterPush(conn, iq), NS.ROSTER, 'iq', 'set');
    try {
      if (!restored) {
        await this.#fetchRoster(conn);
        conn.send($iq({ type: 'set' }).c('enable', { xmlns: NS.CARBONS }).tree());
        if (this.state.myShow === 'invisible') await this.#iq(conn, $iq({ type: 'set' }).c('invisible', { xmlns: NS.INVISIBLE }).tree());
        conn.send(this.#presence().tree());
      }
      for (const m of this.#outbox.splice(0)) conn.send(m);
      this.events.status('online');
      await this.catchUp();
    } catch (e) {
      console.warn('parley: setting up the session failed', e);
      this.events.status('online');
    }
    this.events.changed();
  }

  #presence() {
    const p = $pres();
    if (this.state.myShow === 'away') p.c('show').t('away');
    return p;
  }

  /** Available, away or invisible (XEP-0186). */
  async setShow(show: MyShow): Promise<void> {
    const was = this.state.myShow;
    this.state.myShow = show;
    this.events.changed();
    const conn = this.#conn;
    if (!conn || !this.#online) return; // applied at the next login
    if (show === 'invisible') {
      await this.#iq(conn, $iq({ type: 'set' }).c('invisible', { xmlns: NS.INVISIBLE }).tree());
    } else {
      if (was === 'invisible') await this.#iq(conn, $iq({ type: 'set' }).c('visible', { xmlns: NS.INVISIBLE }).tree());
      conn.send(this.#presence().tree());
    }
  }

  async #fetchRoster(conn: Conn): Promise<void> {
    const res = await this.#iq(conn, $iq({ type: 'get' }).c('query', { xmlns: NS.ROSTER }).tree());
    const seen = new Set<string>();
    for (const item of Array.from(res.getElementsByTagName('item'))) {
      const jid = item.getAttribute('jid');
      if (!jid || item.getAttribute('subscription') === 'remove') continue;
      seen.add(jid);
      const c = (this.state.contacts[jid] ??= { jid, name: '', resources: {} });
      c.name = item.getAttribute('name') || Strophe.getNodeFromJid(jid) || jid;
      c.resources = {};
    }
    for (const jid of Object.keys(this.state.contacts)) if (!seen.has(jid)) delete this.state.contacts[jid];
  }

  #onRosterPush(conn: Conn, iq: Element): boolean {
    const from = iq.getAttribute('from');
    if (from && from !== this.state.jid) return true; // RFC 6121 §2.1.6: only from the user's own account
    for (const item of Array.from(iq.getElementsByTagName('item'))) {
      const jid = item.getAttribute('jid');
      if (!jid) continue;
      if (item.getAttribute('subscription') === 'remove') delete this.state.contacts[jid];
      else {
        const c = (this.state.contacts[jid] ??= { jid, name: '', resources: {} });
        c.name = item.getAttribute('name') || Strophe.getNodeFromJid(jid) || jid;
      }
    }
    conn.send($iq({ type: 'result', id: iq.getAttribute('id') ?? '' }).tree());
    this.events.changed();
    return true;
  }

  #onPresence(p: Element): boolean {
    const from = p.getAttribute('from') ?? '';
    const bare = Strophe.getBareJidFromJid(from) ?? '';
    const resource = Strophe.getResourceFromJid(from) ?? '';
    const c = this.state.contacts[bare];
    if (!c) return true;
    const type = p.getAttribute('type');
    if (type === 'unavailable') {
      delete c.resources[resource];
      if (Object.keys(c.resources).length === 0) c.lastSeen = Date.now();
    }
    else if (type === null) {
      const show = p.getElementsByTagName('show')[0]?.textContent ?? '';
      c.resources[resource] = show === 'away' || show === 'xa' || show === 'dnd' ? 'away' : 'available';
    } else return true;
    if (type === 'unavailable') this.#setTyping(bare, false);
    this.events.changed();
    return true;
  }

  #onMessage(m: Element): boolean {
    // An archive result belongs to the query that asked for it (#query handles it).
    if (child(m, 'result', NS.MAM)) return true;
    const type = m.getAttribute('type') ?? 'normal';
    if (type === 'error' || type === 'groupchat' || type === 'headline') return true;
    const from = m.getAttribute('from') ?? '';
    // Carbons (XEP-0280 §11: only from our own bare JID).
    const carbon = child(m, 'received', NS.CARBONS) ?? child(m, 'sent', NS.CARBONS);
    if (carbon) {
      if (Strophe.getBareJidFromJid(from) !== this.state.jid) return true;
      const inner = child(child(carbon, 'forwarded', NS.FORWARD), 'message');
      if (inner) this.#addMessage(inner, null, carbon.localName === 'received' || carbon.nodeName === 'received');
      return true;
    }
    this.#addMessage(m, null, true);
    return true;
  }

  /**
   * A chat message (live, carbon, offline or from the archive). `archiveId` is the MAM
   * result id; a live message carries it as its stanza-id. Returns true when it was new.
   */
  #addMessage(m: Element, archived: Archived | null, isLive: boolean): boolean {
    const from = m.getAttribute('from') ?? '';
    const fromBare = Strophe.getBareJidFromJid(from) || this.state.jid;
    const mine = fromBare === this.state.jid;
    const peer = mine ? Strophe.getBareJidFromJid(m.getAttribute('to') ?? '') : fromBare;
    if (!peer || peer === this.state.jid) return false;
    const body = child(m, 'body')?.textContent ?? null;
    if (body === null) {
      if (isLive && !mine && !archived) this.#chatState(peer, m);
      return false;
    }
    const keys: string[] = [];
    const stanzaId = Array.from(m.getElementsByTagNameNS(NS.SID, 'stanza-id')).find((e) => e.getAttribute('by') === this.state.jid);
    const archiveId = archived?.id ?? stanzaId?.getAttribute('id') ?? null;
    if (archiveId) keys.push(`a:${archiveId}`);
    const id = m.getAttribute('id');
    if (id) keys.push(`m:${fromBare}:${id}`);
    if (keys.length === 0) keys.push(`t:${Date.now()}:${Math.random()}`);
    const stamp = archived?.stamp ?? child(m, 'delay', NS.DELAY)?.getAttribute('stamp') ?? null;
    const time = stamp ? Date.parse(stamp) || Date.now() : Date.now();
    const msg: ChatMessage = { keys, mine, body, time };
    const added = addMessage(this.state, peer, msg);
    // Live messages come in order: the newest one is where a later catch-up starts.
    if (archiveId && !archived) this.state.lastArchiveId = archiveId;
    if (!mine) this.#setTyping(peer, false);
    if (added && !mine && !archived?.isHistory) this.events.incoming(peer, msg);
    this.events.changed();
    return added;
  }

  #chatState(peer: string, m: Element): void {
    if (child(m, 'composing', NS.CHATSTATES)) this.#setTyping(peer, true);
    else if (child(m, 'paused', NS.CHATSTATES) || child(m, 'active', NS.CHATSTATES) || child(m, 'inactive', NS.CHATSTATES) || child(m, 'gone', NS.CHATSTATES)) {
      this.#setTyping(peer, false);
    }
  }

  #setTyping(peer: string, isTyping: boolean): void {
    const had = this.typing.get(peer);
    if (had !== undefined) clearTimeout(had);
    if (isTyping) {
      // A "paused" that never comes (the contact closed the page) must not leave "typing…" forever.
      this.typing.set(peer, setTimeout(() => this.#setTyping(peer, false), 30_000));
    } else this.typing.delete(peer);
    if (isTyping || had !== undefined) this.events.typing(peer, isTyping);
  }

  #clearTyping(): void {
    for (const peer of [...this.typing.keys()]) this.#setTyping(peer, false);
  }

  /** Sends a chat message with the "active" chat state. */
  send(peer: string, body: string): void {
    const conn = this.#conn;
    const id = nextId('pw');
    const msg: ChatMessage = { keys: [`m:${this.state.jid}:${id}`], mine: true, body, time: Date.now() };
    addMessage(this.state, peer, msg);
    this.#stopComposing(peer, false);
    const stanza = $msg({ to: peer, type: 'chat', id }).c('body').t(body).up().c('active', { xmlns: NS.CHATSTATES }).tree();
    // Written while reconnecting: kept until the next session is up.
    if (conn && this.#online) conn.send(stanza);
    else this.#outbox.push(stanza);
    this.events.changed();
  }

  /** The user typed in a chat window (XEP-0085: composing, then paused after a while). */
  typed(peer: string): void {
    const conn = this.#conn;
    if (!conn || !this.#online) return;
    const t = this.#composing.get(peer);
    if (t === undefined) conn.send($msg({ to: peer, type: 'chat' }).c('composing', { xmlns: NS.CHATSTATES }).tree());
    else clearTimeout(t);
    this.#composing.set(peer, setTimeout(() => this.#stopComposing(peer, true), PAUSED_AFTER_MS));
  }

  #stopComposing(peer: string, sendPaused: boolean): void {
    const t = this.#composing.get(peer);
    if (t === undefined) return;
    clearTimeout(t);
    this.#composing.delete(peer);
    if (sendPaused && this.#conn && this.#online) this.#conn.send($msg({ to: peer, type: 'chat' }).c('paused', { xmlns: NS.CHATSTATES }).tree());
  }

  /**
   * When an offline contact was last seen (XEP-0012), asked once per contact and
   * connection; the server answers contacts with a presence subscription only.
   */
  lastSeen(peer: string): void {
    const conn = this.#conn;
    const c = this.state.contacts[peer];
    if (!conn || !this.#online || !c || c.lastSeen !== undefined || this.#askedLast.has(peer)) return;
    this.#askedLast.add(peer);
    this.#iq(conn, $iq({ type: 'get', to: peer }).c('query', { xmlns: NS.LAST }).tree())
      .then((res) => {
        const seconds = Number(child(res, 'query', NS.LAST)?.getAttribute('seconds'));
        if (!Number.isFinite(seconds) || seconds <= 0 || Object.keys(c.resources).length > 0) return;
        c.lastSeen = Date.now() - seconds * 1000;
        this.events.changed();
      })
      .catch(() => undefined); // not allowed or not known: shown as plain "offline"
  }

  /** The last messages with a contact from the archive (once per conversation). */
  async loadHistory(peer: string): Promise<void> {
    const conn = this.#conn;
    const chat = chatOf(this.state, peer);
    if (!conn || !this.#online || chat.historyLoaded) return;
    chat.historyLoaded = true;
    try {
      await this.#query(conn, { with: peer, before: '', max: HISTORY_PAGE, isHistory: true });
    } catch (e) {
      chat.historyLoaded = false;
      console.warn('parley: history failed', e);
    }
    this.events.changed();
  }

  /** Everything archived after the last message shown (after a reconnect or a page load). */
  async catchUp(): Promise<void> {
    const conn = this.#conn;
    if (!conn || !this.#online) return;
    let after = this.state.lastArchiveId;
    if (after === null) return; // nothing shown yet: history is fetched per conversation
    for (let page = 0; page < 20; page++) {
      let fin: { complete: boolean; last: string | null };
      try {
        fin = await this.#query(conn, { after, max: CATCHUP_PAGE, isHistory: false });
      } catch (e) {
        // The id is unknown (archive expired): take the latest page instead.
        console.warn('parley: catch-up from the last id failed', e);
        await this.#query(conn, { before: '', max: CATCHUP_PAGE, isHistory: false });
        return;
      }
      if (fin.complete || fin.last === null) return;
      after = fin.last;
    }
  }

  /** One MAM query; its results are added as messages. */
  async #query(conn: Conn, q: { with?: string; after?: string; before?: string; max: number; isHistory: boolean }): Promise<{ complete: boolean; last: string | null }> {
    const queryid = nextId('q');
    const iq = $iq({ type: 'set' }).c('query', { xmlns: NS.MAM, queryid });
    if (q.with) {
      iq.c('x', { xmlns: NS.DATA, type: 'submit' })
        .c('field', { var: 'FORM_TYPE', type: 'hidden' })
        .c('value')
        .t(NS.MAM)
        .up()
        .up()
        .c('field', { var: 'with' })
        .c('value')
        .t(q.with)
        .up()
        .up()
        .up();
    }
    iq.c('set', { xmlns: NS.RSM }).c('max').t(String(q.max)).up();
    if (q.after !== undefined) iq.c('after').t(q.after).up();
    if (q.before !== undefined) iq.c('before').t(q.before).up();
    const results: Array<{ el: Element; id: string; stamp: string | null }> = [];
    const handler = conn.addHandler(
      (m: Element) => {
        const r = child(m, 'result', NS.MAM);
        if (!r || r.getAttribute('queryid') !== queryid) return true;
        const fwd = child(r, 'forwarded', NS.FORWARD);
        const inner = child(fwd, 'message');
        if (inner) results.push({ el: inner, id: r.getAttribute('id') ?? '', stamp: child(fwd, 'delay', NS.DELAY)?.getAttribute('stamp') ?? null });
        return true;
      },
      null,
      'message',
      null,
      null,
    );
    try {
      const res = await this.#iq(conn, iq.tree());
      for (const r of results) this.#addMessage(r.el, { id: r.id, stamp: r.stamp, isHistory: q.isHistory }, false);
      const fin = child(res, 'fin', NS.MAM);
      const last = fin?.getElementsByTagNameNS(NS.RSM, 'last')[0]?.textContent ?? null;
      // The newest result of a catch-up (or of the newest page of history) is where the next catch-up starts.
      const newest = results[results.length - 1];
      if (newest && newest.id && (!q.isHistory || this.state.lastArchiveId === null)) this.state.lastArchiveId = newest.id;
      return { complete: fin?.getAttribute('complete') === 'true', last };
    } finally {
      conn.deleteHandler(handler);
    }
  }

  #iq(conn: Conn, iq: Element, timeoutMs = 20_000): Promise<Element> {
    return new Promise((resolve, reject) => {
      conn.sendIQ(
        iq,
        (res: Element) => resolve(res),
        (err: Element | null) => reject(new Error(err ? `IQ error: ${err.getElementsByTagName('error')[0]?.firstElementChild?.localName ?? 'timeout'}` : 'IQ timeout')),
        timeoutMs,
      );
    });
  }
}

function escapeAttr(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/'/g, '&apos;').replace(/</g, '&lt;');
}

/** The first child element with this local name (and namespace, when given). */
export function child(el: Element | null | undefined, name: string, ns?: string): Element | null {
  if (!el) return null;
  for (const c of Array.from(el.children)) {
    if (c.localName === name && (ns === undefined || c.namespaceURI === ns)) return c;
  }
  return null;
}
