/**
 * PEP node configuration: the options Parley supports, read from and written to data
 * forms (XEP-0004) for node configuration and publish-options.
 * References: XEP-0060 §8.2 (configure), §7.1.5 (publishing options), §16.4.3
 * (pubsub#node_config fields); XEP-0163 §4.2 (PEP defaults: access model presence).
 */
import { XmlElement, x } from '../../xml/element.js';
import { NS } from '../../xmpp/ns.js';
import { StanzaError } from '../../xmpp/errors.js';

export type AccessModel = 'open' | 'presence' | 'whitelist';
export type SendLast = 'never' | 'on_sub' | 'on_sub_and_presence';

export interface NodeConfig {
  accessModel: AccessModel;
  persistItems: boolean;
  /** Items kept (at most the service limit). */
  maxItems: number;
  sendLastPublishedItem: SendLast;
  notifyRetract: boolean;
  deliverNotifications: boolean;
  title: string;
}

const ACCESS_MODELS: readonly AccessModel[] = ['open', 'presence', 'whitelist'];
const SEND_LAST: readonly SendLast[] = ['never', 'on_sub', 'on_sub_and_presence'];

/** The configuration of a node created without options (XEP-0163 §4.2: presence access). */
export function defaultConfig(defaultMaxItems: number): NodeConfig {
  return {
    accessModel: 'presence',
    persistItems: true,
    maxItems: defaultMaxItems,
    sendLastPublishedItem: 'on_sub_and_presence',
    notifyRetract: true,
    deliverNotifications: true,
    title: '',
  };
}

/** A stored configuration (JSON), with defaults for what is missing or bad. */
export function configFromJson(json: string, defaults: NodeConfig): NodeConfig {
  let raw: Record<string, unknown> = {};
  try {
    const parsed: unknown = JSON.parse(json);
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) raw = parsed as Record<string, unknown>;
  } catch {
    raw = {};
  }
  const c = { ...defaults };
  if (typeof raw.accessModel === 'string' && (ACCESS_MODELS as readonly string[]).includes(raw.accessModel)) c.accessModel = raw.accessModel as AccessModel;
  if (typeof raw.persistItems === 'boolean') c.persistItems = raw.persistItems;
  if (typeof raw.maxItems === 'number' && Number.isInteger(raw.maxItems) && raw.maxItems > 0) c.maxItems = raw.maxItems;
  if (typeof raw.sendLastPublishedItem === 'string' && (SEND_LAST as readonly string[]).includes(raw.sendLastPublishedItem)) c.sendLastPublishedItem = raw.sendLastPublishedItem as SendLast;
  if (typeof raw.notifyRetract === 'boolean') c.notifyRetract = raw.notifyRetract;
  if (typeof raw.deliverNotifications === 'boolean') c.deliverNotifications = raw.deliverNotifications;
  if (typeof raw.title === 'string') c.title = raw.title;
  return c;
}

export function configToJson(c: NodeConfig): string {
  return JSON.stringify(c);
}

/** The fields of a submitted form: var → values (FORM_TYPE left out). */
export function readForm(form: XmlElement, formType: string): Map<string, string[]> {
  if (form.attrs.type !== 'submit') throw new StanzaError('bad-request', 'the form must be of type submit');
  const fields = new Map<string, string[]>();
  let seenType: string | undefined;
  for (const f of form.getChildren('field', NS.X_DATA)) {
    const name = f.attrs.var;
    if (!name) continue;
    const values = f.getChildren('value', NS.X_DATA).map((v) => v.text());
    if (name === 'FORM_TYPE') {
      seenType = values[0];
      continue;
    }
    fields.set(name, values);
  }
  if (seenType !== undefined && seenType !== formType) throw new StanzaError('bad-request', `the form must be of FORM_TYPE ${formType}`);
  return fields;
}

function bool(field: string, values: string[]): boolean {
  const v = values[0];
  if (v === '1' || v === 'true') return true;
  if (v === '0' || v === 'false') return false;
  throw new StanzaError('not-acceptable', `${field} must be a boolean`);
}

/**
 * Applies submitted fields to a configuration. Unknown fields are refused only when
 * `strict` (node configuration); publish-options ignore what they do not know.
 * `maxItemsLimit` caps pubsub#max_items ("max" means the limit).
 */
export function applyFields(base: NodeConfig, fields: Map<string, string[]>, maxItemsLimit: number, strict: boolean): NodeConfig {
  const c = { ...base };
  for (const [name, values] of fields) {
    switch (name) {
      case 'pubsub#access_model': {
        const v = values[0] ?? '';
        if (!(ACCESS_MODELS as readonly string[]).includes(v)) throw new StanzaError('not-acceptable', `unsupported access model ${v}`);
        c.accessModel = v as AccessModel;
        break;
      }
      case 'pubsub#persist_items':
        c.persistItems = bool(name, values);
        break;
      case 'pubsub#max_items': {
        const v = (values[0] ?? '').trim();
        if (v === 'max') c.maxItems = maxItemsLimit;
        else {
          const n = Number(v);
          if (!/^\d+$/.test(v) || n < 1) throw new StanzaError('not-acceptable', 'pubsub#max_items must be a positive number or max');
          if (n > maxItemsLimit) throw new StanzaError('not-acceptable', `pubsub#max_items may be at most ${maxItemsLimit}`);
          c.maxItems = n;
        }
        break;
      }
      case 'pubsub#send_last_published_item': {
        const v = values[0] ?? '';
        if (!(SEND_LAST as readonly string[]).includes(v)) throw new StanzaError('not-acceptable', `unsupported pubsub#send_last_published_item ${v}`);
        c.sendLastPublishedItem = v as SendLast;
        break;
      }
      case 'pubsub#notify_retract':
        c.notifyRetract = bool(name, values);
        break;
      case 'pubsub#deliver_notifications':
        c.deliverNotifications = bool(name, values);
        break;
      case 'pubsub#title':
        if ((values[0] ?? '').length > 1024) throw new StanzaError('not-acceptable', 'pubsub#title is too long');
        c.title = values[0] ?? '';
        break;
      default:
        if (strict) throw new StanzaError('not-acceptable', `unsupported configuration field ${name}`);
    }
  }
  return c;
}

/**
 * XEP-0060 §7.1.5: does an existing node's configuration satisfy the publish-options?
 * Fields the service does not know are not preconditions it can check: they pass.
 */
export function meetsPreconditions(config: NodeConfig, fields: Map<string, string[]>, maxItemsLimit: number): boolean {
  let wanted: NodeConfig;
  try {
    wanted = applyFields(config, fields, maxItemsLimit, false);
  } catch {
    return false;
  }
  return (
    wanted.accessModel === config.accessModel &&
    wanted.persistItems === config.persistItems &&
    wanted.maxItems === config.maxItems &&
    wanted.sendLastPublishedItem === config.sendLastPublishedItem &&
    wanted.notifyRetract === config.notifyRetract &&
    wanted.deliverNotifications === config.deliverNotifications &&
    wanted.title === config.title
  );
}

const OPTION_LABELS: Record<string, string> = {
  open: 'Anyone',
  presence: 'Contacts with a presence subscription',
  whitelist: 'Only the owner and listed entities',
  never: 'Never',
  on_sub: 'When a subscription is made',
  on_sub_and_presence: 'When a subscription is made and when a subscriber comes online',
};

/** The node configuration form (XEP-0060 §8.2.1): every field Parley supports, with its current value. */
export function configForm(c: NodeConfig, maxItemsLimit: number): XmlElement {
  const field = (v: string, type: string, label: string, value: string, options?: readonly string[]) =>
    x(
      'field',
      { var: v, type, label },
      x('value', null, value),
      ...(options ?? []).map((o) => x('option', { label: OPTION_LABELS[o] ?? o }, x('value', null, o))),
    );
  return x(
    'x',
    { xmlns: NS.X_DATA, type: 'form' },
    x('field', { var: 'FORM_TYPE', type: 'hidden' }, x('value', null, NS.PUBSUB_NODE_CONFIG)),
    field('pubsub#title', 'text-single', 'A friendly name for the node', c.title),
    field('pubsub#access_model', 'list-single', 'Who may subscribe and retrieve items', c.accessModel, ACCESS_MODELS),
    field('pubsub#persist_items', 'boolean', 'Persist items to storage', c.persistItems ? '1' : '0'),
    field('pubsub#max_items', 'text-single', `Max number of items to persist (at most ${maxItemsLimit})`, String(c.maxItems)),
    field('pubsub#send_last_published_item', 'list-single', 'When to send the last published item', c.sendLastPublishedItem, SEND_LAST),
    field('pubsub#notify_retract', 'boolean', 'Notify subscribers when items are removed from the node', c.notifyRetract ? '1' : '0'),
    field('pubsub#deliver_notifications', 'boolean', 'Deliver event notifications', c.deliverNotifications ? '1' : '0'),
  );
}
