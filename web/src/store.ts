/**
 * The widget's state, kept in sessionStorage so that it survives page navigation: the
 * server sends contacts' presence only after the first initial presence of a session,
 * so a page that re-attaches to the same BOSH session must remember what it knew.
 * sessionStorage is per tab, as the BOSH session is (Strophe's `keepalive`).
 */

export type Show = 'available' | 'away';
export type MyShow = 'available' | 'away' | 'invisible';
export type ConnectionState = 'connecting' | 'online' | 'reconnecting' | 'offline' | 'failed';

export interface Contact {
  jid: string;
  name: string;
  /** Online resources and how each shows itself. */
  resources: Record<string, Show>;
  /** When the contact was last seen online (ms since the epoch, XEP-0012), if known. */
  lastSeen?: number;
}

export interface ChatMessage {
  /** Dedup keys: `a:<archive id>` and/or `m:<sender bare>:<message id>`. */
  keys: string[];
  mine: boolean;
  body: string;
  /** Milliseconds since the epoch. */
  time: number;
}

export interface Chat {
  messages: ChatMessage[];
  unread: number;
  /** The archive was asked for this conversation's history already. */
  historyLoaded: boolean;
}

export interface WidgetState {
  /** Bare JID the state belongs to. */
  jid: string;
  contacts: Record<string, Contact>;
  chats: Record<string, Chat>;
  /** Open chat windows, oldest first. */
  open: string[];
  panelOpen: boolean;
  myShow: MyShow;
  /** The archive id of the newest archived message shown: the archive catch-up starts after it. */
  lastArchiveId: string | null;
}

const KEY = 'parley-widget:v1';
/** Messages kept per conversation (older ones are in the archive). */
export const MAX_MESSAGES = 200;

export function emptyState(jid: string): WidgetState {
  return { jid, contacts: {}, chats: {}, open: [], panelOpen: false, myShow: 'available', lastArchiveId: null };
}

/** The saved state of this tab, if it belongs to `jid` (any JID when undefined). */
export function loadState(jid?: string): WidgetState | null {
  try {
    const raw = sessionStorage.getItem(KEY);
    if (!raw) return null;
    const s = JSON.parse(raw) as WidgetState;
    if (typeof s.jid !== 'string' || (jid !== undefined && s.jid !== jid)) return null;
    return s;
  } catch {
    return null;
  }
}

export function saveState(s: WidgetState): void {
  try {
    sessionStorage.setItem(KEY, JSON.stringify(s));
  } catch {
    // Storage full or disabled: the widget still works, it just forgets on navigation.
  }
}

export function clearState(): void {
  try {
    sessionStorage.removeItem(KEY);
  } catch {
    // nothing to clear
  }
}

/** available > away > offline, over a contact's resources. */
export function contactShow(c: Contact): Show | 'offline' {
  const shows = Object.values(c.resources);
  if (shows.includes('available')) return 'available';
  return shows.length > 0 ? 'away' : 'offline';
}

export function chatOf(s: WidgetState, jid: string): Chat {
  return (s.chats[jid] ??= { messages: [], unread: 0, historyLoaded: false });
}

/**
 * Adds a message unless one of its keys was seen; keeps the conversation in time order.
 * Returns false for a duplicate (the same message from the archive, offline storage and
 * a live delivery is shown once).
 */
export function addMessage(s: WidgetState, peer: string, m: ChatMessage): boolean {
  const chat = chatOf(s, peer);
  for (const old of chat.messages) {
    if (old.keys.some((k) => m.keys.includes(k))) {
      for (const k of m.keys) if (!old.keys.includes(k)) old.keys.push(k);
      return false;
    }
  }
  let i = chat.messages.length;
  while (i > 0 && chat.messages[i - 1]!.time > m.time) i--;
  chat.messages.splice(i, 0, m);
  if (chat.messages.length > MAX_MESSAGES) chat.messages.splice(0, chat.messages.length - MAX_MESSAGES);
  return true;
}

export function totalUnread(s: WidgetState): number {
  return Object.values(s.chats).reduce((n, c) => n + c.unread, 0);
}
