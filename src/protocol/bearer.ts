import { TokenError } from "../errors.ts";

/** RFC 6750 b64token: the only characters a Bearer credential may hold. */
const b64token = /^[A-Za-z0-9\-._~+/]+=*$/;

/**
 * Extracts the token from an `Authorization` header value. Strict on purpose,
 * to RFC 6750's `"Bearer" 1*SP b64token`: the scheme is matched
 * case-insensitively (RFC 9110) and separated by one or more spaces, and the
 * credential must be one b64token. Anything else, tabs, leading whitespace,
 * trailing text, a second token, is `token_malformed` rather than a guess; a
 * missing header, another scheme or nothing after the spaces is `token_missing`.
 */
export function parseBearer(header: string | undefined): string {
  if (header === undefined || header === "") {
    throw new TokenError("token_missing", "no Authorization header");
  }
  if (/^\s/.test(header)) {
    throw new TokenError("token_malformed", "the Authorization header starts with whitespace");
  }
  const space = header.indexOf(" ");
  const scheme = space === -1 ? header : header.slice(0, space);
  if (space === -1 && scheme.toLowerCase() === "bearer") {
    throw new TokenError("token_missing", "the Bearer credential is empty");
  }
  if (scheme.toLowerCase() !== "bearer") {
    if (/^bearer/i.test(scheme)) {
      throw new TokenError("token_malformed", "the Bearer scheme is not followed by a space");
    }
    throw new TokenError(
      "token_missing",
      `Authorization uses the ${describeScheme(scheme)} scheme, not Bearer`,
    );
  }
  // RFC 6750 allows 1*SP between the scheme and the token; only spaces, never tabs.
  let start = space + 1;
  while (header.charCodeAt(start) === 0x20) start++;
  const credential = header.slice(start);
  if (credential === "") throw new TokenError("token_missing", "the Bearer credential is empty");
  if (!b64token.test(credential)) {
    throw new TokenError("token_malformed", "the Bearer credential is not a single b64token");
  }
  return credential;
}

function describeScheme(scheme: string): string {
  return /^[A-Za-z][A-Za-z0-9-]{0,31}$/.test(scheme) ? scheme : "an unrecognised";
}

/** The token of an `Authorization` header, or the TokenError saying why there is none. */
export function bearerOrError(header: string | undefined): string | TokenError {
  try {
    return parseBearer(header);
  } catch (error) {
    if (error instanceof TokenError) return error;
    throw error;
  }
}
