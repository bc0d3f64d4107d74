/**
 * The widget's DOM: a launcher button with the unread count, a contact panel (presence,
 * own status), and chat windows. Plain DOM: the whole widget is a few elements, and a
 * framework would weigh more than the widget.
 *
 * Accessibility: every control is a native button, select or textarea with a label;
 * the contact list is navigated with the arrow keys; Escape closes a chat window and
 * gives focus back; each chat log is a `role="log"` live region (new messages are read
 * out) and messages in closed chats are announced by a polite live region.
 */
import { contactShow, chatOf, totalUnread, type ChatMessage, type ConnectionState, type MyShow, type WidgetState } from './store.js';
import type { ChatClient } from './client.js';

type Attrs = Record<string, string | boolean | number | EventListener | undefined>;

/** A tiny element builder: attributes (on* as listeners) and children. */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Array<Node | string | null>): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    if (typeof v === 'function') el.addEventListener(k.slice(2).toLowerCase(), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) if (c !== null) el.append(c);
  return el;
}

const SHOW_LABEL = { available: 'available', away: 'away', offline: 'offline', invisible: 'invisible' } as const;
const STATUS_TEXT: Record<ConnectionState, string> = {
  connecting: 'Connecting…',
  online: 'Online',
  reconnecting: 'Connection lost. Reconnecting…',
  offline: 'Offline',
  failed: 'Cannot connect',
};
/** Chat windows shown at once (the oldest closes when a new one opens). */
const MAX_OPEN = 3;

interface ChatWindow {
  el: HTMLElement;
  log: HTMLOListElement;
  typing: HTMLElement;
  input: HTMLTextAreaElement;
  title: HTMLElement;
  /** What the log shows: the first and last message keys and how many. */
  firstKey: string | undefined;
  lastKey: string | undefined;
  rendered: number;
}

export class WidgetView {
  readonly root: HTMLElement;
  #launcher: HTMLButtonElement;
  #badge: HTMLElement;
  #panel: HTMLElement;
  #status: HTMLElement;
  #retry: HTMLButtonElement;
  #showSelect: HTMLSelectElement;
  #contacts: HTMLUListElement;
  #chats: HTMLElement;
  #announcer: HTMLElement;
  #windows = new Map<string, ChatWindow>();
  #connState: ConnectionState = 'connecting';
  #uid = Math.random().toString(36).slice(2, 8);

  constructor(
    readonly state: WidgetState,
    readonly client: ChatClient,
    readonly save: () => void,
  ) {
    this.#badge = h('span', { class: 'parley-badge', 'aria-hidden': 'true' });
    this.#launcher = h('button', { type: 'button', class: 'parley-launcher', 'aria-controls': `parley-panel-${this.#uid}`, onclick: () => this.togglePanel() }, 'Chat', this.#badge);
    this.#status = h('p', { class: 'parley-status', role: 'status' });
    this.#retry = h('button', { type: 'button', class: 'parley-retry', hidden: true, onclick: () => client.retryNow() }, 'Retry now');
    this.#showSelect = h(
      'select',
      { id: `parley-show-${this.#uid}`, class: 'parley-show', onchange: () => void this.client.setShow(this.#showSelect.value as MyShow) },
      h('option', { value: 'available' }, 'Available'),
      h('option', { value: 'away' }, 'Away'),
      h('option', { value: 'invisible' }, 'Invisible'),
    );
    this.#contacts = h('ul', { class: 'parley-contacts', 'aria-label': 'Contacts', onkeydown: (e: Event) => this.#contactKeys(e as KeyboardEvent) });
    this.#panel = h(
      'section',
      { id: `parley-panel-${this.#uid}`, class: 'parley-panel', 'aria-label': 'Contacts and status', hidden: true },
      h('div', { class: 'parley-panel-head' }, h('label', { for: `parley-show-${this.#uid}` }, 'My status'), this.#showSelect),
      h('div', { class: 'parley-conn' }, this.#status, this.#retry),
      this.#contacts,
    );
    this.#chats = h('div', { class: 'parley-chats' });
    this.#announcer = h('div', { class: 'parley-sr', 'aria-live': 'polite' });
    this.root = h('div', { class: 'parley', role: 'region', 'aria-label': 'Chat' }, this.#chats, h('div', { class: 'parley-dock' }, this.#panel, this.#launcher), this.#announcer);
  }

  togglePanel(open = !this.state.panelOpen): void {
    this.state.panelOpen = open;
    this.render();
    if (open) (this.#contacts.querySelector('button') ?? this.#showSelect).focus();
  }

  setConnection(state: ConnectionState, detail?: string): void {
    this.#connState = state;
    this.#status.textContent = STATUS_TEXT[state] + (detail && state !== 'online' ? ` (${detail})` : '');
    this.#retry.hidden = state !== 'reconnecting';
    this.root.dataset.connection = state;
    this.render();
  }

  /** A new message from a contact: unread count, announcement. */
  incoming(peer: string, m: ChatMessage): void {
    const chat = chatOf(this.state, peer);
    const win = this.#windows.get(peer);
    const isSeen = win !== undefined && document.visibilityState === 'visible';
    if (!isSeen) chat.unread++;
    // An open chat log is a live region itself; others are announced here.
    if (!win) this.#announcer.textContent = `New message from ${this.#name(peer)}: ${m.body}`;
  }

  typing(peer: string): void {
    const win = this.#windows.get(peer);
    if (win) this.#renderTyping(peer, win);
    this.#renderContacts();
  }

  openChat(peer: string, focus = true): void {
    if (!this.state.open.includes(peer)) {
      this.state.open.push(peer);
      while (this.state.open.length > MAX_OPEN) this.state.open.shift();
    }
    chatOf(this.state, peer).unread = 0;
    this.render();
    void this.client.loadHistory(peer);
    if (focus) this.#windows.get(peer)?.input.focus();
  }

  closeChat(peer: string): void {
    this.state.open = this.state.open.filter((j) => j !== peer);
    this.render();
    const back = this.state.panelOpen ? this.#contacts.querySelector<HTMLButtonElement>(`button[data-jid="${CSS.escape(peer)}"]`) : null;
    (back ?? this.#launcher).focus();
  }

  render(): void {
    const unread = totalUnread(this.state);
    this.#badge.textContent = unread > 0 ? String(unread) : '';
    this.#badge.hidden = unread === 0;
    this.#launcher.setAttribute('aria-expanded', String(this.state.panelOpen));
    this.#launcher.setAttribute('aria-label', unread > 0 ? `Chat, ${unread} unread` : 'Chat');
    this.#panel.hidden = !this.state.panelOpen;
    this.#showSelect.value = this.state.myShow;
    this.root.dataset.show = this.state.myShow;
    this.#renderContacts();
    this.#renderChats();
    this.save();
  }

  #name(jid: string): string {
    return this.state.contacts[jid]?.name || jid.split('@')[0] || jid;
  }

  #renderContacts(): void {
    const focused = (document.activeElement as HTMLElement | null)?.dataset?.jid;
    const contacts = Object.values(this.state.contacts).sort((a, b) => {
      const rank = (s: string) => (s === 'available' ? 0 : s === 'away' ? 1 : 2);
      return rank(contactShow(a)) - rank(contactShow(b)) || a.name.localeCompare(b.name);
    });
    const items = contacts.map((c) => {
      const show = this.#connState === 'online' ? contactShow(c) : 'offline';
      const unread = this.state.chats[c.jid]?.unread ?? 0;
      const typing = this.client.typing.has(c.jid);
      if (show === 'offline' && this.#connState === 'online') this.client.lastSeen(c.jid);
      const seen = show === 'offline' && c.lastSeen !== undefined ? ago(c.lastSeen) : '';
      const label = `${c.name}, ${SHOW_LABEL[show]}${seen ? `, last seen ${seen}` : ''}${unread ? `, ${unread} unread` : ''}${typing ? ', typing' : ''}`;
      return h(
        'li',
        { class: `parley-contact parley-${show}`, 'data-jid': c.jid, 'data-show': show },
        h(
          'button',
          { type: 'button', 'data-jid': c.jid, 'aria-label': label, onclick: () => this.openChat(c.jid) },
          h('span', { class: 'parley-dot', 'aria-hidden': 'true' }),
          h('span', { class: 'parley-name' }, c.name),
          h('span', { class: 'parley-presence', 'aria-hidden': 'true' }, typing ? 'typing…' : seen ? `${SHOW_LABEL[show]}, last seen ${seen}` : SHOW_LABEL[show]),
          unread ? h('span', { class: 'parley-badge', 'aria-hidden': 'true', 'data-unread': unread }, String(unread)) : null,
        ),
      );
    });
    if (items.length === 0) items.push(h('li', { class: 'parley-empty' }, 'No contacts yet'));
    this.#contacts.replaceChildren(...items);
    if (focused) this.#contacts.querySelector<HTMLButtonElement>(`button[data-jid="${CSS.escape(focused)}"]`)?.focus();
  }

  #contactKeys(e: KeyboardEvent): void {
    const buttons = Array.from(this.#contacts.querySelectorAll<HTMLButtonElement>('button'));
    const i = buttons.indexOf(document.activeElement as HTMLButtonElement);
    let next = -1;
    if (e.key === 'ArrowDown') next = Math.min(buttons.length - 1, i + 1);
    else if (e.key === 'ArrowUp') next = Math.max(0, i - 1);
    else if (e.key === 'Home') next = 0;
    else if (e.key === 'End') next = buttons.length - 1;
    else if (e.key === 'Escape') {
      this.togglePanel(false);
      this.#launcher.focus();
    }
    if (next >= 0 && buttons[next]) {
      e.preventDefault();
      buttons[next]!.focus();
    }
  }

  #renderChats(): void {
    for (const [peer, win] of this.#windows) {
      if (!this.state.open.includes(peer)) {
        win.el.remove();
        this.#windows.delete(peer);
      }
    }
    for (const peer of this.state.open) {
      let win = this.#windows.get(peer);
      if (!win) {
        win = this.#createWindow(peer);
        this.#windows.set(peer, win);
        this.#chats.append(win.el);
      }
      const c = this.state.contacts[peer];
      const show = c && this.#connState === 'online' ? contactShow(c) : 'offline';
      win.el.dataset.show = show;
      win.title.textContent = `${this.#name(peer)} (${SHOW_LABEL[show]})`;
      this.#renderLog(peer, win);
      this.#renderTyping(peer, win);
    }
  }

  #createWindow(peer: string): ChatWindow {
    const id = `parley-${this.#uid}-${peer.replace(/[^a-z0-9]/gi, '_')}`;
    const title = h('h2', { id: `${id}-title`, class: 'parley-chat-title' });
    const log = h('ol', { class: 'parley-log', role: 'log', 'aria-labelledby': `${id}-title`, tabindex: 0 });
    const typing = h('p', { class: 'parley-typing', 'aria-live': 'polite' });
    const input = h('textarea', { id: `${id}-input`, rows: 2, class: 'parley-input', autocomplete: 'off' });
    const send = () => {
      const text = input.value.trim();
      if (!text) return;
      input.value = '';
      this.client.send(peer, text);
    };
    input.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        send();
      }
    });
    input.addEventListener('input', () => this.client.typed(peer));
    input.addEventListener('focus', () => {
      const chat = chatOf(this.state, peer);
      if (chat.unread) {
        chat.unread = 0;
        this.render();
      }
    });
    const el = h(
      'section',
      { class: 'parley-chat', 'aria-labelledby': `${id}-title`, 'data-jid': peer, onkeydown: (e: Event) => (e as KeyboardEvent).key === 'Escape' && this.closeChat(peer) },
      h('header', {}, title, h('button', { type: 'button', class: 'parley-close', 'aria-label': `Close chat with ${this.#name(peer)}`, onclick: () => this.closeChat(peer) }, '×')),
      log,
      typing,
      h(
        'form',
        { class: 'parley-form', onsubmit: (e: Event) => (e.preventDefault(), send()) },
        h('label', { for: `${id}-input`, class: 'parley-sr' }, `Message to ${this.#name(peer)}`),
        input,
        h('button', { type: 'submit' }, 'Send'),
      ),
    );
    return { el, log, typing, input, title, firstKey: undefined, lastKey: undefined, rendered: 0 };
  }

  #renderLog(peer: string, win: ChatWindow): void {
    const messages = chatOf(this.state, peer).messages;
    // Appending keeps the live region quiet about old messages; anything else (history
    // prepended, a late message placed earlier) rebuilds the log.
    const isAppend = win.rendered <= messages.length && win.firstKey === messages[0]?.keys[0] && win.lastKey === messages[win.rendered - 1]?.keys[0];
    if (!isAppend) {
      win.log.replaceChildren();
      win.rendered = 0;
      win.firstKey = messages[0]?.keys[0];
    }
    const added = messages.length - win.rendered;
    for (const m of messages.slice(win.rendered)) {
      const time = new Date(m.time);
      win.log.append(
        h(
          'li',
          { class: m.mine ? 'parley-msg parley-mine' : 'parley-msg parley-theirs' },
          h('span', { class: 'parley-sr' }, m.mine ? 'You: ' : `${this.#name(peer)}: `),
          h('span', { class: 'parley-body' }, m.body),
          h('time', { datetime: time.toISOString() }, time.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })),
        ),
      );
    }
    win.rendered = messages.length;
    win.lastKey = messages[messages.length - 1]?.keys[0];
    if (added > 0) win.log.scrollTop = win.log.scrollHeight;
  }

  #renderTyping(peer: string, win: ChatWindow): void {
    const text = this.client.typing.has(peer) ? `${this.#name(peer)} is typing…` : '';
    if (win.typing.textContent !== text) win.typing.textContent = text;
  }
}

/** "just now", "5 min ago", "3 h ago", "2 days ago". */
export function ago(at: number, now = Date.now()): string {
  const s = Math.max(0, Math.round((now - at) / 1000));
  if (s < 60) return 'just now';
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h ago`;
  const d = Math.floor(s / 86_400);
  return d === 1 ? '1 day ago' : `${d} days ago`;
}
