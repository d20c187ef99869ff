import { TokenError } from "../errors.ts";

/**
 * Value of each base64url character (RFC 4648 §5); -1 for any other code unit.
 * Indexed by char code below 128.
 */
const sextet: readonly number[] = (() => {
  const table = new Array<number>(128).fill(-1);
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  for (let index = 0; index < alphabet.length; index++) table[alphabet.charCodeAt(index)] = index;
  return table;
})();

/**
 * Refuses a compact JWS that is not in its one canonical spelling. Decoders
 * are lenient: jose and Buffer accept `=` padding, skip whitespace and ignore
 * the unused low bits of a segment's last character, so one signed token has
 * many spellings that all verify. A deny-list, a cache or a log search keyed
 * by the token string then misses every respelling. So each of the three
 * segments must be non-empty unpadded base64url (RFC 7515 §2: A-Z a-z 0-9 - _,
 * no `=`), of a length that is not 1 mod 4 (no whole byte ends there), with
 * the unused bits of its last character zero. Anything else is
 * `token_malformed`, before any cryptography. An empty signature can only
 * belong to `alg: none`, which no issuer accepts.
 */
export function requireCanonicalSpelling(token: string): void {
  const segments = token.split(".");
  if (segments.length !== 3) {
    throw new TokenError("token_malformed", "not a compact JWS (three dot-separated parts)");
  }
  segments.forEach((segment, index) => {
    const problem = spellingProblem(segment);
    if (problem !== undefined) {
      throw new TokenError("token_malformed", `the token's ${segmentNames[index]} ${problem}`);
    }
  });
}

const segmentNames = ["header", "payload", "signature"] as const;

/** Why a segment is not canonical unpadded base64url, or undefined when it is. */
function spellingProblem(segment: string): string | undefined {
  if (segment.length === 0) return "is empty";
  for (let index = 0; index < segment.length; index++) {
    const code = segment.charCodeAt(index);
    if (code >= 128 || sextet[code] === -1) {
      // Never echo the character: it is part of a credential.
      return "holds a character outside unpadded base64url";
    }
  }
  const remainder = segment.length % 4;
  if (remainder === 1) return "has a length no base64url encoding produces";
  // 2 characters carry 1 byte (4 unused bits), 3 carry 2 bytes (2 unused bits).
  const unusedBits = remainder === 2 ? 0b1111 : remainder === 3 ? 0b11 : 0;
  const last = sextet[segment.charCodeAt(segment.length - 1)] ?? -1;
  if ((last & unusedBits) !== 0) return "is not canonical (non-zero unused bits at its end)";
  return undefined;
}
