/**
 * Reading a MAM query: the data form (XEP-0313 §4.1, XEP-0004) and the result set
 * management element (XEP-0059 §2). Bad input is a bad-request, as the XEPs say.
 */
import type { XmlElement } from '../../xml/element.js';
import { NS } from '../../xmpp/ns.js';
import { Jid } from '../../xmpp/jid.js';
import { StanzaError } from '../../xmpp/errors.js';

const XDATA = 'jabber:x:data';
/** SECURITY: bound on the ids of one `ids` field (each becomes a bound parameter). */
const MAX_IDS = 250;

export interface MamQuery {
  queryId?: string;
  with?: Jid;
  /** Milliseconds, inclusive. */
  start?: number;
  end?: number;
  afterId?: string;
  beforeId?: string;
  ids?: string[];
  /** mam:2#extended: the page in reverse order. */
  flipPage: boolean;
  rsm: {
    /** Clamped to the server's page size. */
    max: number;
    after?: string;
    /** '' for "the last page". */
    before?: string;
    index?: number;
  };
}

/** XEP-0082 DateTime: `CCYY-MM-DDThh:mm:ss[.sss]TZD`; milliseconds since the epoch. */
export function parseDateTime(s: string): number | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.exec(s.trim());
  if (!m) return null;
  const frac = m[7] ? m[7].slice(0, 4).padEnd(4, '0') : '';
  const t = Date.parse(`${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}${frac}${m[8]}`);
  if (Number.isNaN(t)) return null;
  // Date.parse may roll impossible dates (Feb 30) over: refuse those.
  const day = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])));
  if (day.getUTCMonth() !== Number(m[2]) - 1 || day.getUTCDate() !== Number(m[3])) return null;
  if (Number(m[4]) > 23 || Number(m[5]) > 59 || Number(m[6]) > 59) return null;
  return t;
}

export function parseQuery(query: XmlElement, maxPageSize: number): MamQuery {
  if (query.attrs.node !== undefined) throw new StanzaError('item-not-found', 'a user archive has no nodes');
  const q: MamQuery = { flipPage: false, rsm: { max: maxPageSize } };
  if (query.attrs.queryid !== undefined) q.queryId = query.attrs.queryid;
  for (const el of query.elements()) {
    if (el.ns === XDATA && el.name === 'x') readForm(el, q);
    else if (el.ns === NS.RSM && el.name === 'set') readRsm(el, q, maxPageSize);
    else if (el.ns === NS.MAM && el.name === 'flip-page') q.flipPage = true;
  }
  if (q.start !== undefined && q.end !== undefined && q.start > q.end) {
    // An empty interval: not an error, just nothing (count 0).
    q.ids = [];
  }
  return q;
}

function readForm(form: XmlElement, q: MamQuery): void {
  const type = form.attrs.type;
  if (type !== undefined && type !== 'submit') throw new StanzaError('bad-request', 'the query form must be of type submit');
  for (const f of form.getChildren('field', XDATA)) {
    const name = f.attrs.var;
    const values = f.getChildren('value', XDATA).map((v) => v.text());
    const one = (): string | undefined => {
      if (values.length > 1) throw new StanzaError('bad-request', `field ${name} takes one value`);
      const v = values[0]?.trim();
      return v === '' ? undefined : v;
    };
    switch (name) {
      case 'FORM_TYPE': {
        const v = one();
        if (v !== NS.MAM && v !== NS.MAM_EXTENDED) throw new StanzaError('bad-request', `unknown FORM_TYPE ${v ?? ''}`);
        break;
      }
      case 'with': {
        const v = one();
        if (v === undefined) break;
        const jid = Jid.tryParse(v);
        if (!jid) throw new StanzaError('bad-request', 'with is not a JID');
        q.with = jid;
        break;
      }
      case 'start':
      case 'end': {
        const v = one();
        if (v === undefined) break;
        const t = parseDateTime(v);
        if (t === null) throw new StanzaError('bad-request', `${name} is not an XEP-0082 date and time`);
        q[name] = t;
        break;
      }
      case 'after-id':
      case 'before-id': {
        const v = one();
        if (v === undefined) break;
        if (name === 'after-id') q.afterId = v;
        else q.beforeId = v;
        break;
      }
      case 'ids': {
        const list = values.map((v) => v.trim()).filter((v) => v !== '');
        if (list.length > MAX_IDS) throw new StanzaError('policy-violation', `at most ${MAX_IDS} ids`);
        q.ids = list;
        break;
      }
      default:
        throw new StanzaError('bad-request', `unsupported field ${name ?? '(no var)'}`);
    }
  }
}

function readRsm(set: XmlElement, q: MamQuery, maxPageSize: number): void {
  const nonNegative = (name: string): number | undefined => {
    const el = set.getChild(name, NS.RSM);
    if (!el) return undefined;
    const t = el.text().trim();
    if (!/^\d{1,9}$/.test(t)) throw new StanzaError('bad-request', `RSM ${name} must be a non-negative integer`);
    return Number(t);
  };
  const max = nonNegative('max');
  if (max !== undefined) q.rsm.max = Math.min(max, maxPageSize);
  const index = nonNegative('index');
  if (index !== undefined) q.rsm.index = index;
  const after = set.getChild('after', NS.RSM);
  if (after) {
    const t = after.text().trim();
    if (t === '') throw new StanzaError('bad-request', 'RSM after needs an id');
    q.rsm.after = t;
  }
  const before = set.getChild('before', NS.RSM);
  if (before) q.rsm.before = before.text().trim();
}
