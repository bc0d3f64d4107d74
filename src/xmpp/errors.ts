/**
 * One error hierarchy for the protocol layers.
 * References: RFC 6120 §4.9 (stream errors), §8.3 (stanza errors), §6.5 (SASL failures).
 *
 * Every error has a stable `code`; tests assert the code, never the message.
 */
import { XmlElement, x } from '../xml/element.js';
import { NS } from './ns.js';

/** RFC 6120 §4.9.3 defined stream error conditions. */
export type StreamErrorCondition =
  | 'bad-format'
  | 'bad-namespace-prefix'
  | 'conflict'
  | 'connection-timeout'
  | 'host-gone'
  | 'host-unknown'
  | 'improper-addressing'
  | 'internal-server-error'
  | 'invalid-from'
  | 'invalid-namespace'
  | 'invalid-xml'
  | 'not-authorized'
  | 'not-well-formed'
  | 'policy-violation'
  | 'remote-connection-failed'
  | 'reset'
  | 'resource-constraint'
  | 'restricted-xml'
  | 'see-other-host'
  | 'system-shutdown'
  | 'undefined-condition'
  | 'unsupported-encoding'
  | 'unsupported-feature'
  | 'unsupported-stanza-type'
  | 'unsupported-version';

/** RFC 6120 §8.3.3 defined stanza error conditions. */
export type StanzaErrorCondition =
  | 'bad-request'
  | 'conflict'
  | 'feature-not-implemented'
  | 'forbidden'
  | 'gone'
  | 'internal-server-error'
  | 'item-not-found'
  | 'jid-malformed'
  | 'not-acceptable'
  | 'not-allowed'
  | 'not-authorized'
  | 'policy-violation'
  | 'recipient-unavailable'
  | 'redirect'
  | 'registration-required'
  | 'remote-server-not-found'
  | 'remote-server-timeout'
  | 'resource-constraint'
  | 'service-unavailable'
  | 'subscription-required'
  | 'undefined-condition'
  | 'unexpected-request';

export type StanzaErrorType = 'auth' | 'cancel' | 'continue' | 'modify' | 'wait';

/** RFC 6120 §6.5 SASL failure conditions. */
export type SaslFailureCondition =
  | 'aborted'
  | 'account-disabled'
  | 'credentials-expired'
  | 'encryption-required'
  | 'incorrect-encoding'
  | 'invalid-authzid'
  | 'invalid-mechanism'
  | 'malformed-request'
  | 'mechanism-too-weak'
  | 'not-authorized'
  | 'temporary-auth-failure';

/** The default error type of each stanza condition (RFC 6120 §8.3.3). */
const DEFAULT_TYPE: Record<StanzaErrorCondition, StanzaErrorType> = {
  'bad-request': 'modify',
  conflict: 'cancel',
  'feature-not-implemented': 'cancel',
  forbidden: 'auth',
  gone: 'cancel',
  'internal-server-error': 'cancel',
  'item-not-found': 'cancel',
  'jid-malformed': 'modify',
  'not-acceptable': 'modify',
  'not-allowed': 'cancel',
  'not-authorized': 'auth',
  'policy-violation': 'modify',
  'recipient-unavailable': 'wait',
  redirect: 'modify',
  'registration-required': 'auth',
  'remote-server-not-found': 'cancel',
  'remote-server-timeout': 'wait',
  'resource-constraint': 'wait',
  'service-unavailable': 'cancel',
  'subscription-required': 'auth',
  'undefined-condition': 'cancel',
  'unexpected-request': 'wait',
};

/** The base of the protocol errors (stream, stanza, SASL, JID); `code` is stable, tests assert it. */
export abstract class XmppError extends Error {
  abstract readonly code: string;
}

/** An error that ends the stream (RFC 6120 §4.9). */
export class StreamError extends XmppError {
  readonly code: string;
  constructor(
    readonly condition: StreamErrorCondition,
    readonly text?: string,
    /**
     * For see-other-host: where to reconnect. TCP sends it as the condition's content
     * ("host:port"); WebSocket as `see-other-uri` on `<close/>` (RFC 7395 §3.6.1).
     */
    readonly target?: string,
    /** Extra application-specific condition element (RFC 6120 §4.9.4). */
    readonly appCondition?: XmlElement,
  ) {
    super(text ? `${condition}: ${text}` : condition);
    this.name = 'StreamError';
    this.code = 'STREAM_' + condition.toUpperCase().replace(/-/g, '_');
  }

  /** `<stream:error>` element; the stream prefix is bound by the stream header. */
  toElement(): XmlElement {
    return x(
      'stream:error',
      null,
      x(this.condition, { xmlns: NS.STREAMS }, this.target ?? null),
      this.text ? x('text', { xmlns: NS.STREAMS, 'xml:lang': 'en' }, this.text) : null,
      this.appCondition ?? null,
    );
  }
}

/** An error answered to one stanza (RFC 6120 §8.3). */
export class StanzaError extends XmppError {
  readonly code: string;
  readonly type: StanzaErrorType;
  constructor(
    readonly condition: StanzaErrorCondition,
    readonly text?: string,
    type?: StanzaErrorType,
    /** Extra application-specific condition element. */
    readonly appCondition?: XmlElement,
  ) {
    super(text ? `${condition}: ${text}` : condition);
    this.name = 'StanzaError';
    this.type = type ?? DEFAULT_TYPE[condition];
    this.code = 'STANZA_' + condition.toUpperCase().replace(/-/g, '_');
  }

  /** The `<error/>` child. `by` names the entity that generated it (RFC 6120 §8.3.2). */
  toElement(by?: string): XmlElement {
    return x(
      'error',
      { type: this.type, by },
      x(this.condition, { xmlns: NS.STANZAS }),
      this.text ? x('text', { xmlns: NS.STANZAS, 'xml:lang': 'en' }, this.text) : null,
      this.appCondition ?? null,
    );
  }

  /** Reads the condition of an `<error/>` child, for clients and tests. */
  static fromStanza(stanza: XmlElement): StanzaError | undefined {
    const err = stanza.getChild('error');
    if (!err) return undefined;
    const cond = err.elements().find((e) => e.ns === NS.STANZAS && e.name !== 'text');
    if (!cond) return undefined;
    const type = err.attrs.type as StanzaErrorType | undefined;
    return new StanzaError(cond.name as StanzaErrorCondition, err.getChildText('text', NS.STANZAS), type);
  }
}

/** A SASL authentication failure (RFC 6120 §6.5). */
export class SaslFailure extends XmppError {
  readonly code: string;
  constructor(
    readonly condition: SaslFailureCondition,
    readonly text?: string,
  ) {
    super(text ? `${condition}: ${text}` : condition);
    this.name = 'SaslFailure';
    this.code = 'SASL_' + condition.toUpperCase().replace(/-/g, '_');
  }

  toElement(): XmlElement {
    return x(
      'failure',
      { xmlns: NS.SASL },
      x(this.condition),
      this.text ? x('text', { 'xml:lang': 'en' }, this.text) : null,
    );
  }
}
