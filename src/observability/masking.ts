/** A value that looks like a JWT (JWS or JWE compact form). */
const tokenLike = /eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_.-]*/g;

/** What replaces a token-like string. */
export const redacted = "[REDACTED]";

/**
 * Removes the fields named by JSON pointers (e.g. `/input/resource/properties/arguments`)
 * and redacts token-like strings anywhere, returning a new value and the pointers removed.
 * The input is not modified.
 */
export function maskRecord(
  record: Record<string, unknown>,
  erasePointers: readonly string[],
): { record: Record<string, unknown>; erased: string[] } {
  const copy = redactTokens(record) as Record<string, unknown>;
  const erased: string[] = [];
  for (const pointer of erasePointers) {
    if (erase(copy, pointer.split("/").slice(1).map(unescape))) erased.push(pointer);
  }
  return { record: copy, erased };
}

function unescape(segment: string): string {
  return segment.replaceAll("~1", "/").replaceAll("~0", "~");
}

function erase(target: Record<string, unknown>, path: string[]): boolean {
  const [head, ...rest] = path;
  if (head === undefined || !Object.hasOwn(target, head)) return false;
  if (rest.length === 0) {
    // eslint-disable-next-line @typescript-eslint/no-dynamic-delete -- the path is operator configuration
    delete target[head];
    return true;
  }
  const next = target[head];
  return typeof next === "object" && next !== null && !Array.isArray(next)
    ? erase(next as Record<string, unknown>, rest)
    : false;
}

/** A deep copy with token-like substrings replaced; bounded depth (records are built by the PDP). */
function redactTokens(value: unknown, depth = 0): unknown {
  if (typeof value === "string") return value.replace(tokenLike, redacted);
  if (typeof value !== "object" || value === null || depth > 64) return value;
  if (Array.isArray(value)) return value.map((item) => redactTokens(item, depth + 1));
  const copy: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    Object.defineProperty(copy, key, {
      value: redactTokens(item, depth + 1),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return copy;
}
