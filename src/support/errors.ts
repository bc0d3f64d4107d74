/**
 * The errors of the parts below the protocol: configuration, storage, policy. Each has a
 * stable `code`; tests assert the code, never the message. The protocol errors (stream,
 * stanza, SASL) are in `xmpp/errors.ts`.
 */

/** The base of Parley's own (non-protocol) errors. */
export abstract class ParleyError extends Error {
  abstract readonly code: string;
}

/** A bad configuration file or value: names the key's path and the reason. */
export class ConfigError extends ParleyError {
  readonly code = 'CONFIG_INVALID';
  constructor(
    readonly path: string,
    readonly reason: string,
  ) {
    super(path ? `config: ${path}: ${reason}` : `config: ${reason}`);
    this.name = 'ConfigError';
  }
}

/** A storage failure. Its message never reaches a client; clients see a stanza error. */
export class StorageError extends ParleyError {
  readonly code: string;
  constructor(
    message: string,
    readonly transient: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'StorageError';
    this.code = transient ? 'STORAGE_TRANSIENT' : 'STORAGE_FAILED';
  }
}

/** A limit or policy hit (rate limits, sizes). Maps to a stanza or stream error by the caller. */
export class PolicyViolation extends ParleyError {
  readonly code: string;
  constructor(
    readonly limit: string,
    message: string,
  ) {
    super(message);
    this.name = 'PolicyViolation';
    this.code = 'POLICY_' + limit.toUpperCase().replace(/[^A-Z0-9]+/g, '_');
  }
}
