/**
 * Batch items inherit their subject and context from the request (AuthZEN
 * §7.1): 256 items sharing a 1 MiB context would serialize and encode that
 * context 256 times. A cache of UTF-8 JSON texts keyed by object identity,
 * kept for one batch, does it once per shared part. Only the values two levels
 * down (inside subject, action, resource and context) are cached: those are
 * what items share; above them the input builder makes new objects per item
 * (a new `context.time`, the PDP-owned subject properties).
 */
export class InputJsonCache {
  private readonly encoded = new WeakMap<object, Buffer | undefined>();

  /** The UTF-8 bytes of JSON.stringify(value), computed once per object for the life of this cache. */
  bytesOf(value: object): Buffer | undefined {
    if (this.encoded.has(value)) return this.encoded.get(value);
    const text = stringify(value);
    const bytes = text === undefined ? undefined : Buffer.from(text, "utf8");
    this.encoded.set(value, bytes);
    return bytes;
  }
}

/** JSON.stringify as it behaves: undefined for what JSON cannot represent. */
const stringify = JSON.stringify as (value: unknown) => string | undefined;

/**
 * The UTF-8 JSON text of an input, byte for byte what JSON.stringify writes,
 * as a standalone ArrayBuffer (never a view into a shared pool: the SDK copies
 * the whole buffer); the values two levels down come from `cache` when given.
 * Undefined for what JSON cannot represent; throws like JSON.stringify on
 * cycles and BigInt.
 */
export function inputJsonBytes(input: unknown, cache?: InputJsonCache): ArrayBuffer | undefined {
  if (cache === undefined) {
    // One decision: the text encoded once into a buffer of its own, no chunks to copy together.
    const text = stringify(input);
    return text === undefined ? undefined : encodeOwn(text);
  }
  const chunks: Buffer[] = [];
  if (!write(input, cache, 0, chunks)) return undefined;
  const total = chunks.reduce((sum, chunk) => sum + chunk.length, 0);
  const bytes = new Uint8Array(new ArrayBuffer(total));
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.length;
  }
  return bytes.buffer;
}

/** Appends the JSON of `value`; false (nothing appended) where JSON.stringify gives undefined. */
function write(value: unknown, cache: InputJsonCache | undefined, depth: number, out: Buffer[]) {
  const shared = cache !== undefined && typeof value === "object" && value !== null && depth === 2;
  if (shared) {
    const bytes = cache.bytesOf(value);
    if (bytes === undefined) return false;
    out.push(bytes);
    return true;
  }
  // Only plain objects above the cached level are taken apart; everything else is JSON.stringify's.
  const plain =
    cache !== undefined &&
    typeof value === "object" &&
    value !== null &&
    !Array.isArray(value) &&
    !("toJSON" in value);
  if (!plain) {
    const text = stringify(value);
    if (text === undefined) return false;
    out.push(Buffer.from(text, "utf8"));
    return true;
  }
  out.push(openBrace);
  let first = true;
  for (const [key, item] of Object.entries(value)) {
    const mark = out.length;
    out.push(Buffer.from(`${first ? "" : ","}${stringify(key) ?? ""}:`, "utf8"));
    // JSON.stringify leaves out properties whose value JSON cannot represent.
    if (write(item, cache, depth + 1, out)) first = false;
    else out.length = mark;
  }
  out.push(closeBrace);
  return true;
}

const utf8 = new TextEncoder();

/** The UTF-8 bytes of `text` in an ArrayBuffer holding exactly them (TextEncoder allocates one per call). */
function encodeOwn(text: string): ArrayBuffer {
  const bytes = utf8.encode(text);
  if (bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength) return bytes.buffer;
  return bytes.slice().buffer;
}

const openBrace = Buffer.from("{");
const closeBrace = Buffer.from("}");
