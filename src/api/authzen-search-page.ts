import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { ApiError } from "../errors.ts";

/**
 * JSON with object keys sorted at every level: one text per value, so that a
 * request's binding does not depend on how the client ordered its keys.
 */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (typeof value === "object" && value !== null) {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, item]) => item !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([key, item]) => `${JSON.stringify(key)}:${canonicalJson(item)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

const version = "p1";
/** The offset is a candidate index: at most the candidate cap, so a few digits. */
const tokenShape = /^p1\.(0|[1-9][0-9]{0,8})\.([A-Za-z0-9_-]{43})$/;

/**
 * Opaque page tokens, bound to the request they continue: a token carries the
 * offset of the next candidate and an HMAC (SHA-256, a key drawn at random
 * when the process starts) over that offset and the request's binding (see
 * the search API: its kind, caller, policy revision and canonical body minus
 * `page`). A token replayed with other parameters, altered, or issued by
 * another process (or before a restart) fails the HMAC and is refused with
 * 400 `page_token_invalid`; nothing about the request is stored.
 */
export class PageTokens {
  private readonly key: Buffer;

  constructor(key: Buffer = randomBytes(32)) {
    this.key = key;
  }

  /** The token that continues the search bound by `binding` at candidate `offset`. */
  issue(binding: string, offset: number): string {
    const text = `${version}.${offset}.${this.mac(binding, offset).toString("base64url")}`;
    return Buffer.from(text, "utf8").toString("base64url");
  }

  /** The offset a token continues at (0 without a token); throws `page_token_invalid`. */
  offsetOf(token: string | undefined, binding: string): number {
    if (token === undefined || token === "") return 0;
    const text = /^[A-Za-z0-9_-]+$/.test(token)
      ? Buffer.from(token, "base64url").toString("utf8")
      : "";
    const match = tokenShape.exec(text);
    const offset = match === null ? Number.NaN : Number(match[1]);
    const sent = match === null ? Buffer.alloc(0) : Buffer.from(match[2] ?? "", "base64url");
    const expected = this.mac(binding, Number.isNaN(offset) ? 0 : offset);
    if (match === null || sent.length !== expected.length || !timingSafeEqual(sent, expected)) {
      throw invalidToken();
    }
    return offset;
  }

  private mac(binding: string, offset: number): Buffer {
    return createHmac("sha256", this.key)
      .update(version)
      .update("\0")
      .update(String(offset))
      .update("\0")
      .update(binding)
      .digest();
  }
}

export function invalidToken(): ApiError {
  return new ApiError(
    "page_token_invalid",
    "page.token is not a token this PDP issued for this request (tokens are bound to the request's parameters and do not survive a restart)",
    "/page/token",
  );
}
