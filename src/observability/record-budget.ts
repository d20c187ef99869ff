/**
 * The per-record byte budget of decision records. A record copies values from
 * the request (context keys, ids, names, the whole input when asked for); a
 * batch item copies what it inherits. Without a bound, four 1 MiB requests
 * wrote 1 GB of log. Sizes are measured by a walk that costs what the value
 * costs, once per shared object, and is never done with JSON.stringify of the
 * oversized value.
 */
import { define, redactText } from "./masking.ts";

/** What replaces a value that did not fit. */
export const truncatedMarker = "[TRUNCATED]";

/** One value replaced by the marker: where it was (a JSON pointer) and its JSON size. */
export interface Truncation {
  field: string;
  bytes: number;
}

/**
 * Fields that hold what the request or the policy sent, largest replaced
 * first. Under `input` the request's own parts are replaced before the whole
 * input is; key names under them are the caller's, so none of them is listed
 * (a pointer naming a 1 MB key would itself be 1 MB).
 */
const candidateFields: readonly string[][] = [
  ["subject", "id"],
  ["subject", "issuer"],
  ["subject", "client_id"],
  ["subject", "token_error"],
  ["action"],
  ["resource", "type"],
  ["resource", "id"],
  ["resource", "server"],
  ["risk"],
  ["reasons"],
  ["obligations"],
  ["result"],
  ["input", "subject", "type"],
  ["input", "subject", "id"],
  ["input", "subject", "properties"],
  ["input", "action", "name"],
  ["input", "action", "properties"],
  ["input", "resource", "type"],
  ["input", "resource", "id"],
  ["input", "resource", "properties"],
  ["input", "context"],
];

/** Replaced when everything above was not enough (e.g. many keys at the input's top level). */
const lastResortFields: readonly string[][] = [["input"], ["context"]];

/**
 * Keeps decision records within `maxBytes` of JSON: a record that fits is
 * returned as is; otherwise a copy where the largest request-derived values
 * (context keys among them) are replaced by `[TRUNCATED]` until it fits, with
 * the list of what was replaced. The given record is never changed (it
 * shares objects with the request).
 */
export class RecordBudget {
  readonly maxBytes: number;
  private readonly contextKeys: readonly string[];
  /** Sizes of large objects already measured: batch items share their defaults. */
  private readonly sizes = new WeakMap<object, number>();
  /** What surelyFits may still count (in UTF-16 units and punctuation) before giving up. */
  private allowance = 0;

  constructor(maxBytes: number, contextKeys: readonly string[]) {
    this.maxBytes = maxBytes;
    this.contextKeys = contextKeys;
  }

  bound(record: Record<string, unknown>): {
    record: Record<string, unknown>;
    truncated: Truncation[];
  } {
    // Normal records are a small fraction of the budget: a walk that only adds up lengths
    // proves they fit (no UTF-16 unit takes more than 6 bytes of JSON, \uXXXX), and gives up
    // as soon as it cannot, so that it never costs more than the budget's worth of walking.
    this.allowance = Math.floor(this.maxBytes / 6);
    if (this.surelyFits(record)) return { record, truncated: [] };
    let total = this.size(record);
    if (total <= this.maxBytes) return { record, truncated: [] };

    const candidates: { path: string[]; bytes: number }[] = [];
    const consider = (path: readonly string[]): void => {
      const value = valueAt(record, path);
      if (value !== undefined) candidates.push({ path: [...path], bytes: this.size(value) });
    };
    for (const path of candidateFields) consider(path);
    for (const key of this.contextKeys) consider(["context", key]);
    candidates.sort((a, b) => b.bytes - a.bytes);

    let result = record;
    let truncated: Truncation[] = [];
    const replace = (path: string[], bytes: number): void => {
      const field = pointerOf(path);
      // Entries under a field replaced now are gone with it.
      truncated = truncated.filter((entry) => !entry.field.startsWith(`${field}/`));
      truncated.push({ field, bytes });
      result = replacedCopy(result, path, truncatedMarker);
    };
    // A replacement adds the marker and an entry in `truncated`: worth it for values larger.
    const overhead = this.size({ truncated: [{ field: "", bytes: 0 }] }) + 16;
    const fits = (): boolean => this.size({ ...result, truncated }) <= this.maxBytes;
    for (const candidate of candidates) {
      if (total <= this.maxBytes) break;
      const pointerBytes = pointerOf(candidate.path).length;
      if (candidate.bytes <= overhead + pointerBytes) continue;
      replace(candidate.path, candidate.bytes);
      // Measured again, not estimated: what is left is small or already measured.
      total = this.size({ ...result, truncated });
    }
    for (const path of lastResortFields) {
      if (fits()) break;
      const value = valueAt(result, path);
      if (value !== undefined && value !== truncatedMarker) {
        replace(path, this.size(valueAt(record, path)));
      }
    }
    return { record: result, truncated };
  }

  /**
   * Whether `value`'s JSON is within `allowance` × 6 bytes: string lengths, 24 for a number
   * (the longest a double prints), and the punctuation, without looking at characters.
   */
  private surelyFits(value: unknown): boolean {
    switch (typeof value) {
      case "string":
        this.allowance -= value.length + 2;
        break;
      case "object":
        if (value === null) {
          this.allowance -= 4;
        } else if (Array.isArray(value)) {
          this.allowance -= 2 + value.length;
          for (const item of value as unknown[]) if (!this.surelyFits(item)) return false;
        } else {
          this.allowance -= 2;
          for (const key in value) {
            if (!Object.hasOwn(value, key)) continue;
            this.allowance -= key.length + 4;
            if (!this.surelyFits((value as Record<string, unknown>)[key])) return false;
          }
        }
        break;
      default:
        this.allowance -= 24;
    }
    return this.allowance >= 0;
  }

  /**
   * The byte length of `JSON.stringify(value)` (UTF-8) without building it:
   * escapes and multi-byte characters are counted, except in a string longer
   * than the whole budget, which counts as its length (it does not fit either
   * way, and scanning it for each batch item would cost what the bound saves).
   * `toJSON` is not called: records hold plain data.
   */
  size(value: unknown): number {
    switch (typeof value) {
      case "string":
        // Measured as written: redaction can lengthen a short token-like string ([REDACTED]).
        return value.length > this.maxBytes ? value.length + 2 : stringSize(redactText(value));
      case "number":
        return Number.isFinite(value) ? String(value).length : 4;
      case "boolean":
        return value ? 4 : 5;
      case "object":
        return value === null ? 4 : this.objectSize(value);
      default:
        // undefined, functions, symbols: `null` in an array (left out of objects by objectSize).
        return 4;
    }
  }

  private objectSize(value: object): number {
    // A shared object (a batch's inherited context) is measured once, whatever its shape.
    const known = this.sizes.get(value);
    if (known !== undefined) return known;
    const keys = Array.isArray(value) ? undefined : Object.keys(value);
    let size = 2;
    if (keys === undefined) {
      const items = value as unknown[];
      for (let i = 0; i < items.length; i++) size += this.size(items[i]) + (i > 0 ? 1 : 0);
    } else {
      let first = true;
      for (const key of keys) {
        const item = (value as Record<string, unknown>)[key];
        const type = typeof item;
        if (item === undefined || type === "function" || type === "symbol") continue;
        size += this.size(key) + 1 + this.size(item) + (first ? 0 : 1);
        first = false;
      }
    }
    // Whatever is large is remembered, however it is built (a deep tree of small objects too).
    if (size > memoMinBytes) this.sizes.set(value, size);
    return size;
  }
}

function pointerOf(path: readonly string[]): string {
  return `/${path.map((s) => s.replaceAll("~", "~0").replaceAll("/", "~1")).join("/")}`;
}

function valueAt(target: unknown, path: readonly string[]): unknown {
  let value = target;
  for (const segment of path) {
    if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined;
    if (!Object.hasOwn(value, segment)) return undefined;
    value = (value as Record<string, unknown>)[segment];
  }
  return value;
}

/** A copy of `target` with the value at `path` replaced, copying only the objects on the path. */
function replacedCopy(
  target: Record<string, unknown>,
  path: readonly string[],
  value: unknown,
): Record<string, unknown> {
  const [head, ...rest] = path;
  if (head === undefined) return target;
  const child = target[head];
  const next =
    rest.length === 0
      ? value
      : replacedCopy(
          typeof child === "object" && child !== null ? (child as Record<string, unknown>) : {},
          rest,
          value,
        );
  const copy: Record<string, unknown> = {};
  for (const [key, existing] of Object.entries(target)) define(copy, key, existing);
  define(copy, head, next);
  return copy;
}

/** Objects and arrays measured larger than this keep their measured size. */
const memoMinBytes = 1024;

/** A character that is not one byte as is in JSON: an escape, a control character, non-ASCII. */
const notPlainAscii = /[^\x20\x21\x23-\x5b\x5d-\x7e]/;

/** Bytes of a JSON string literal: quotes, escapes, UTF-8 (lone surrogates escaped as \uXXXX). */
function stringSize(text: string): number {
  // Nearly every string in a record is plain ASCII: one regex test instead of a loop in JS.
  if (!notPlainAscii.test(text)) return text.length + 2;
  let size = 2;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x80) {
      if (code === 0x22 || code === 0x5c || code === 0x08 || code === 0x0c || code === 0x0a)
        size += 2;
      else if (code === 0x0d || code === 0x09) size += 2;
      else if (code < 0x20) size += 6;
      else size += 1;
    } else if (code < 0x800) {
      size += 2;
    } else if (code >= 0xd800 && code <= 0xdbff) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        size += 4;
        i++;
      } else {
        size += 6;
      }
    } else if (code >= 0xdc00 && code <= 0xdfff) {
      size += 6;
    } else {
      size += 3;
    }
  }
  return size;
}
