/**
 * Number literals a double cannot hold. JSON.parse turns every literal into
 * the nearest IEEE double, which is what the compiled (wasm) policy compares;
 * OPA's own evaluator keeps the exact decimal. `900.00000000000000001` is
 * therefore 900 to the PDP and more than 900 to `opa eval`, and a bound such
 * as `max_auth_age_s` flips between them. A literal is faithful when its
 * exact decimal value is the shortest round-trip decimal of its double:
 * then both readings compare alike against every other faithful number.
 */

const quote = 0x22;
const backslash = 0x5c;
const minus = 0x2d;
const plus = 0x2b;
const dot = 0x2e;
const zero = 0x30;
const nine = 0x39;
const lowerE = 0x65;
const upperE = 0x45;
const openBrace = 0x7b;
const closeBrace = 0x7d;
const openBracket = 0x5b;
const closeBracket = 0x5d;
const comma = 0x2c;

/**
 * A decimal of at most this many significant digits, in the normal range,
 * always survives decimal → double → shortest decimal (DBL_DIG is 15).
 */
const alwaysFaithfulDigits = 15;
/** Decimal exponents (of the leading digit) well inside the normal range of doubles. */
const minSafeExponent = -307;
const maxSafeExponent = 307;

/** An unfaithful literal: where it starts in the text, and the literal itself. */
export interface InexactNumber {
  offset: number;
  literal: string;
}

/**
 * The first number literal of a JSON text whose exact value differs from the
 * double JSON.parse makes of it: too many significant digits (`12345678901234567890`),
 * out of range (`1e400`) or underflowing (`1e-400`), or undefined when every
 * literal is faithful. `text` must be valid JSON (parse it first): strings are
 * skipped by their quotes alone. One pass; literals of at most 15 significant
 * digits are judged by counting, the rest against `toExponential()`.
 */
export function findInexactNumber(text: string): InexactNumber | undefined {
  const length = text.length;
  let index = 0;
  while (index < length) {
    const char = text.charCodeAt(index);
    if (char === quote) {
      index = endOfString(text, index);
    } else if (char === minus || (char >= zero && char <= nine)) {
      // The common case inline: an integer of at most 15 digits is always faithful.
      const start = index;
      if (char === minus) index++;
      const digitsStart = index;
      let next = text.charCodeAt(index);
      while (next >= zero && next <= nine) next = text.charCodeAt(++index);
      if (next === dot || next === lowerE || next === upperE || index - digitsStart > 15) {
        const end = endOfNumber(text, index);
        if (!isFaithful(text, start, end))
          return { offset: start, literal: text.slice(start, end) };
        index = end;
      }
    } else {
      index++;
    }
  }
  return undefined;
}

/** The index just past the closing quote of the string that opens at `start`. */
export function endOfString(text: string, start: number): number {
  let close = text.indexOf('"', start + 1);
  for (;;) {
    // A quote preceded by an odd number of backslashes is escaped.
    let backslashes = 0;
    while (text.charCodeAt(close - 1 - backslashes) === backslash) backslashes++;
    if (backslashes % 2 === 0) return close + 1;
    close = text.indexOf('"', close + 1);
  }
}

function isDigit(char: number): boolean {
  return char >= zero && char <= nine;
}

function endOfNumber(text: string, start: number): number {
  let index = start;
  for (;;) {
    const char = text.charCodeAt(index);
    if (isDigit(char) || char === minus || char === plus || char === dot) index++;
    else if (char === lowerE || char === upperE) index++;
    else return index;
  }
}

/** Whether the literal `text[start, end)` (valid JSON number syntax) is exactly its double. */
function isFaithful(text: string, start: number, end: number): boolean {
  let index = text.charCodeAt(start) === minus ? start + 1 : start;
  // Significant digits: from the first non-zero digit to the last, across the point.
  let first = -1; // text index of the first non-zero digit
  let last = -1; // text index of the last non-zero digit
  let pointAt = -1; // text index of the decimal point, if any
  let digits = 0;
  for (; index < end; index++) {
    const char = text.charCodeAt(index);
    if (char === dot) {
      pointAt = index;
    } else if (isDigit(char)) {
      digits++;
      if (char !== zero) {
        if (first === -1) first = index;
        last = index;
      }
    } else {
      break; // the exponent marker
    }
  }
  if (first === -1) return true; // zero in any spelling: 0, -0, 0.000, 0e999
  const hasExponent = index < end;
  // No exponent and at most 15 digits: below 1e15 and (if non-zero) at least 1e-14.
  if (!hasExponent && digits <= alwaysFaithfulDigits) return true;

  const integerEnd = pointAt === -1 ? index : pointAt;
  // The significant digits between `first` and `last`, minus a point between them.
  const significant = last - first + 1 - (pointAt > first && pointAt < last ? 1 : 0);
  // Decimal exponent of the leading significant digit, before the literal's own exponent.
  let leading = first < integerEnd ? integerEnd - first - 1 : -(first - integerEnd);
  if (hasExponent) leading += exponentOf(text, index + 1, end);
  if (
    significant <= alwaysFaithfulDigits &&
    leading >= minSafeExponent &&
    leading <= maxSafeExponent
  ) {
    return true;
  }

  const value = Number(text.slice(start, end));
  if (!Number.isFinite(value) || value === 0) return false; // overflow, underflow
  // The shortest round-trip decimal, as "d.ddde±x" (toExponential is several times faster
  // than String() for 17-digit doubles): compare its digits and exponent without allocating.
  const shortest = (value < 0 ? -value : value).toExponential();
  const marker = shortest.indexOf("e");
  const shortestDigits = marker > 1 ? marker - 1 : marker; // "9e+2" has no point
  if (shortestDigits !== significant) return false;
  if (exponentOf(shortest, marker + 1, shortest.length) !== leading) return false;
  let at = first;
  for (let index = 0; index < marker; index++) {
    if (index === 1) continue; // the point after the first digit
    if (at === pointAt) at++;
    if (shortest.charCodeAt(index) !== text.charCodeAt(at)) return false;
    at++;
  }
  return true;
}

/** The value of an exponent (`[+-]digits` at `text[start, end)`), saturating far outside any double's range. */
function exponentOf(text: string, start: number, end: number): number {
  let index = start;
  const sign = text.charCodeAt(index) === minus ? -1 : 1;
  if (text.charCodeAt(index) === minus || text.charCodeAt(index) === plus) index++;
  let value = 0;
  for (; index < end; index++) {
    if (value < 1e9) value = value * 10 + (text.charCodeAt(index) - zero);
  }
  return sign * value;
}

interface Container {
  array: boolean;
  /** The raw (still quoted) key of the member being read, in an object. */
  key: string;
  index: number;
}

/**
 * The RFC 6901 JSON pointer of the value that starts at `offset` in a valid
 * JSON text. Linear; meant for error reports, so it runs only on a refusal.
 */
export function jsonPointerAt(text: string, offset: number): string {
  const stack: Container[] = [];
  let expectingKey = false;
  let index = 0;
  while (index < offset) {
    const char = text.charCodeAt(index);
    const top = stack.at(-1);
    if (char === quote) {
      const end = endOfString(text, index);
      if (expectingKey && top !== undefined) {
        top.key = text.slice(index, end);
        expectingKey = false;
      }
      index = end;
      continue;
    }
    if (char === openBrace || char === openBracket) {
      stack.push({ array: char === openBracket, key: '""', index: 0 });
      expectingKey = char === openBrace;
    } else if (char === closeBrace || char === closeBracket) {
      stack.pop();
    } else if (char === comma && top !== undefined) {
      if (top.array) top.index++;
      else expectingKey = true;
    }
    index++;
  }
  if (stack.length === 0) return "";
  const parts = stack.map((container) =>
    container.array
      ? String(container.index)
      : (JSON.parse(container.key) as string)
          // A pointer never carries a lone surrogate on to the client or the logs.
          .replace(/\p{Cs}/gu, "\ufffd")
          .replaceAll("~", "~0")
          .replaceAll("/", "~1"),
  );
  return `/${parts.join("/")}`;
}

/**
 * Where a value already parsed (by the MCP server's own `express.json()`)
 * holds a number that is not finite: `1e400` parses as Infinity, which the
 * tool receives as such while JSON carries it to the PDP as `null`, so the
 * policy would judge another value than the one that runs. Walks without
 * recursion, so no nesting depth can overflow the stack. The JSON pointer,
 * or undefined when every number is finite.
 */
export function nonFiniteNumberPointer(value: unknown): string | undefined {
  const pending: { value: unknown; pointer: string }[] = [{ value, pointer: "" }];
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    const current = next.value;
    if (typeof current === "number") {
      if (!Number.isFinite(current)) return next.pointer;
    } else if (typeof current === "object" && current !== null) {
      for (const [key, item] of Object.entries(current)) {
        const segment = key.replaceAll("~", "~0").replaceAll("/", "~1");
        pending.push({ value: item, pointer: `${next.pointer}/${segment}` });
      }
    }
  }
  return undefined;
}
