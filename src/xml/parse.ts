/**
 * Parses one complete element from a string (stored stanzas, tests). Same parser and
 * limits as the streams; throws on bad input.
 */
import type { XmlElement } from './element.js';
import { XmlStreamParser, type XmlParserLimits } from './parser.js';

export class XmlParseError extends Error {
  readonly code = 'XML_PARSE';
  constructor(
    readonly condition: string,
    text: string,
  ) {
    super(`${condition}: ${text}`);
    this.name = 'XmlParseError';
  }
}

/** Parses exactly one element. */
export function parseElement(xml: string, limits?: Partial<XmlParserLimits>): XmlElement {
  let result: XmlElement | undefined;
  let count = 0;
  let error: XmlParseError | undefined;
  const parser = new XmlStreamParser(
    {
      onStreamStart() {},
      onElement(el) {
        result = el;
        count++;
      },
      onStreamEnd() {},
      onError(condition, text) {
        error = new XmlParseError(condition, text);
      },
    },
    { framed: true, limits: { maxStanzaBytes: 16 * 1024 * 1024, ...limits } },
  );
  parser.writeString(xml);
  if (error) throw error;
  if (count !== 1 || !result) throw new XmlParseError('not-well-formed', count === 0 ? 'no complete element' : 'more than one element');
  return result;
}
