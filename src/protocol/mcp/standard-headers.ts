/**
 * The Streamable HTTP standard headers as MCP 2026-07-28 defines them
 * (`MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`): which revisions bind
 * them, where a request's body names its revision, and how a header value is
 * decoded. Read by the one MCP reader (request-reader.ts) only.
 */

/** The revision that made `Mcp-Method` (every request) and `Mcp-Name` mandatory and binding. */
export const headersBindingRevision = "2026-07-28";

/** The `_meta` key under which a 2026-07-28 message names its protocol revision. */
export const protocolVersionMetaKey = "io.modelcontextprotocol/protocolVersion";

/**
 * Whether a declared revision is 2026-07-28 or later, compared as the SDKs
 * compare revisions (date strings, in order). A server applies the
 * 2026-07-28 header rules to such a request, so the PDP must too: for a body
 * it can see, a stricter reading never lets more through.
 */
export function declaresBindingHeaders(version: string | undefined): boolean {
  return version !== undefined && version >= headersBindingRevision;
}

const sentinelPrefix = "=?base64?";
const sentinelSuffix = "?=";
const base64Alphabet = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * A header value as the transport spec has it: plain text, or, for text that
 * is not plain ASCII, `=?base64?<UTF-8 bytes in Base64>?=`. Returns undefined
 * for a value that cannot be read one way only: a sentinel whose payload is
 * not canonical Base64 (padding, alphabet, no stray bits) or not valid UTF-8,
 * and a value shaped like an encoded word in another spelling (`=?BASE64?…`,
 * which RFC 2047 readers decode and this transport does not).
 */
export function decodeHeaderValue(value: string): string | undefined {
  const sentinel = value.startsWith(sentinelPrefix) && value.endsWith(sentinelSuffix);
  if (!sentinel) {
    // One reader would take it as text, another decode it: the PDP does not guess which.
    if (/^=\?[^?]*\?/.test(value)) return undefined;
    return value;
  }
  const payload = value.slice(sentinelPrefix.length, value.length - sentinelSuffix.length);
  if (payload.length % 4 !== 0 || !base64Alphabet.test(payload)) return undefined;
  const bytes = Buffer.from(payload, "base64");
  // Canonical only: the same bytes re-encode to the same payload (no stray bits, no extra padding).
  if (bytes.toString("base64") !== payload) return undefined;
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    return undefined;
  }
}
