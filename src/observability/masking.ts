/** A value that looks like a JWT (JWS or JWE compact form). */
const tokenLike = /eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_.-]*/g;

/** What replaces a token-like string. */
export const redacted = "[REDACTED]";

/**
 * Removes the fields named by JSON pointers (e.g. `/input/resource/properties/arguments`),
 * copying only the objects on each erased path: records share objects with the request
 * (batch items share their defaults), which must not change. Returns the pointers removed.
 */
export function eraseFields(
  record: Record<string, unknown>,
  pointers: readonly string[],
): { record: Record<string, unknown>; erased: string[] } {
  let result = record;
  const erased: string[] = [];
  for (const pointer of pointers) {
    const path = pointer.split("/").slice(1).map(unescape);
    const next = eraseCopy(result, path);
    if (next !== undefined) {
      result = next;
      erased.push(pointer);
    }
  }
  return { record: result, erased };
}

function unescape(segment: string): string {
  return segment.replaceAll("~1", "/").replaceAll("~0", "~");
}

/** A copy of `target` without the field at `path`, or undefined when there is no such field. */
function eraseCopy(
  target: Record<string, unknown>,
  path: string[],
): Record<string, unknown> | undefined {
  const [head, ...rest] = path;
  if (head === undefined || !Object.hasOwn(target, head)) return undefined;
  const copy: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(target)) {
    if (key !== head) define(copy, key, value);
  }
  if (rest.length === 0) return copy;
  const child = target[head];
  if (typeof child !== "object" || child === null || Array.isArray(child)) return undefined;
  const erasedChild = eraseCopy(child as Record<string, unknown>, rest);
  if (erasedChild === undefined) return undefined;
  define(copy, head, erasedChild);
  return copy;
}

/** Sets an own, plain property, even for a key such as `__proto__` that assignment would not. */
export function define(target: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(target, key, {
    value,
    enumerable: true,
    writable: true,
    configurable: true,
  });
}

/**
 * The one way a decision record becomes text: JSON with every token-like
 * string redacted, wherever it sits (a JWT pasted into a tool argument or a
 * context field included). Redaction happens during serialization, in the
 * same pass, so records need no deep copy.
 */
export function serializeRecord(record: Record<string, unknown>): string {
  // A replacer takes JSON.stringify off its fast path (several times slower). Every token-like
  // string starts with `eyJ`, which JSON writes unescaped: a text without `eyJ` has nothing to
  // redact and is exactly what the replacer would have written. Only one with it pays the pass.
  const plain = JSON.stringify(record);
  if (!plain.includes("eyJ")) return plain;
  return JSON.stringify(record, redactValue);
}

function redactValue(_key: string, value: unknown): unknown {
  return typeof value === "string" ? redactText(value) : value;
}

/** A string value as a record writes it: every token-like part replaced by `[REDACTED]`. */
export function redactText(value: string): string {
  return value.includes("eyJ") ? value.replace(tokenLike, redacted) : value;
}
