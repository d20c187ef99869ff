import { hash } from "node:crypto";
import { decodeJwt, decodeProtectedHeader, errors, jwtVerify, type JWTPayload } from "jose";
import { LRUCache } from "lru-cache";
import type { KeySource } from "./key-sources.ts";
import { TokenError } from "../errors.ts";
import { requireCanonicalSpelling } from "./token-spelling.ts";

/** What one trusted issuer's tokens must satisfy. */
export interface IssuerPolicy {
  /** Exact `iss` value. */
  issuer: string;
  /**
   * The protected resources this issuer may mint tokens for (canonical URIs,
   * RFC 8707); undefined: any registered server.
   */
  audiences: readonly string[] | undefined;
  /** Accepted `alg` values; asymmetric only by default. */
  algorithms: readonly string[];
  /** Required `typ` header (e.g. `at+jwt`, RFC 9068), if any. */
  requiredTyp: string | undefined;
  /** Leeway for `exp`, `nbf` and `iat`, in seconds. */
  clockToleranceS: number;
  /** Longest accepted token, in bytes. */
  maxTokenBytes: number;
  keys: KeySource;
  /** How `subject.type` is chosen; see subject-builder.ts. */
  subjectType: { claim: string | undefined; clientCredentials: string; default: string };
}

/** A token that passed every check. */
export interface VerifiedToken {
  issuer: IssuerPolicy;
  claims: JWTPayload & { sub: string; exp: number };
}

/** Verifies bearer tokens; throws TokenError with the reason otherwise. */
export interface TokenVerifier {
  /**
   * `audience` is the canonical resource URI of the one server the request is
   * for: the token's `aud` must contain it (RFC 8707). There is no "any
   * audience of the issuer" mode.
   */
  verify(token: string, nowMs: number, audience: string): Promise<VerifiedToken>;
}

/**
 * JWT access-token verification with jose, for one or more trusted issuers.
 * Checks, in order: size, compact JWS shape (a JWE is refused), issuer known,
 * `alg` on the issuer's allow-list, then signature, `typ`, `iss`, `aud`, `exp`
 * (required), `nbf`, `sub` (required) with jose, and `iat` not in the future.
 * `jku`, `x5u` and `jwk` headers are never used: keys come only from the
 * issuer's configured source. Successful verifications may be cached, keyed by
 * a hash of the token, never past `exp`.
 */
export class JwtTokenVerifier implements TokenVerifier {
  private readonly issuers: ReadonlyMap<string, IssuerPolicy>;
  private readonly maxTokenBytes: number;
  private readonly cache: LRUCache<string, VerifiedToken> | undefined;

  constructor(issuers: readonly IssuerPolicy[], cacheEntries: number) {
    this.issuers = new Map(issuers.map((issuer) => [issuer.issuer, issuer]));
    this.maxTokenBytes = Math.max(0, ...issuers.map((issuer) => issuer.maxTokenBytes));
    this.cache = cacheEntries > 0 ? new LRUCache({ max: cacheEntries }) : undefined;
  }

  async verify(token: string, nowMs: number, audience: string): Promise<VerifiedToken> {
    const nowS = Math.floor(nowMs / 1000);
    if (token.length > this.maxTokenBytes) {
      throw new TokenError("token_too_large", `the token exceeds ${this.maxTokenBytes} bytes`);
    }
    // The audience is part of the key: a token verified for one MCP server proves nothing for another.
    // crypto.hash is the one-shot digest: no Hash object per request on the cache-hit path.
    const cacheKey =
      this.cache === undefined ? "" : `${hash("sha256", token, "base64url")} ${audience}`;
    const cached = this.cache?.get(cacheKey);
    if (cached !== undefined) {
      if (cached.claims.exp > nowS - cached.issuer.clockToleranceS) return cached;
      this.cache?.delete(cacheKey);
    }

    const issuer = this.precheck(token);
    if (issuer.audiences !== undefined && !issuer.audiences.includes(audience)) {
      throw new TokenError(
        "token_wrong_audience",
        "this issuer is not trusted for the server the request is for",
      );
    }
    let claims: JWTPayload;
    try {
      ({ payload: claims } = await jwtVerify(token, issuer.keys.getKey, {
        issuer: issuer.issuer,
        audience,
        algorithms: [...issuer.algorithms],
        clockTolerance: issuer.clockToleranceS,
        currentDate: new Date(nowMs),
        requiredClaims: ["exp", "sub"],
        ...(issuer.requiredTyp === undefined ? {} : { typ: issuer.requiredTyp }),
      }));
    } catch (error) {
      throw issuer.keys.classify(error) ?? classifyJoseError(error);
    }

    if (!wellFormed(claims)) {
      // The policy's evaluators read a lone surrogate differently (wasm fails, opa eval replaces it).
      throw new TokenError("token_claim_invalid", "a claim holds text that is not valid Unicode");
    }
    if (typeof claims.sub !== "string" || claims.sub === "") {
      throw new TokenError("token_claim_invalid", "sub must be a non-empty string");
    }
    if (typeof claims.iat === "number" && claims.iat > nowS + issuer.clockToleranceS) {
      throw new TokenError(
        "token_issued_in_future",
        "iat is in the future beyond the clock tolerance",
      );
    }
    const verified = { issuer, claims: claims as VerifiedToken["claims"] };
    this.cache?.set(cacheKey, verified);
    return verified;
  }

  /** Cheap structural checks (shape, canonical spelling) before any cryptography; picks the issuer. */
  private precheck(token: string): IssuerPolicy {
    const parts = token.split(".");
    if (parts.length === 5) {
      throw new TokenError(
        "token_encrypted",
        "a JWE was sent where a signed JWT (JWS) is expected",
      );
    }
    // One spelling per token, before any decoding: a respelled token is not a different token.
    requireCanonicalSpelling(token);
    let header: ReturnType<typeof decodeProtectedHeader>;
    let unverifiedIssuer: unknown;
    try {
      header = decodeProtectedHeader(token);
      unverifiedIssuer = decodeJwt(token).iss;
    } catch {
      throw new TokenError(
        "token_malformed",
        "the token's header or claims are not base64url JSON",
      );
    }
    const issuer =
      typeof unverifiedIssuer === "string" ? this.issuers.get(unverifiedIssuer) : undefined;
    if (issuer === undefined) {
      throw new TokenError("token_wrong_issuer", "iss is missing or not a trusted issuer");
    }
    if (token.length > issuer.maxTokenBytes) {
      throw new TokenError("token_too_large", `the token exceeds ${issuer.maxTokenBytes} bytes`);
    }
    if (typeof header.alg !== "string" || !issuer.algorithms.includes(header.alg)) {
      throw new TokenError(
        "token_alg_not_allowed",
        // The alg is attacker-controlled text: echo it only when it looks like an algorithm name.
        `alg ${typeof header.alg === "string" && /^[A-Za-z0-9+_-]{1,16}$/.test(header.alg) ? header.alg : "(unrecognised)"} is not allowed for this issuer`,
      );
    }
    return issuer;
  }
}

/** Whether every string (and key) in the claims is well-formed UTF-16: no lone surrogate. */
function wellFormed(value: unknown): boolean {
  if (typeof value === "string") return value.isWellFormed();
  if (Array.isArray(value)) return value.every(wellFormed);
  if (typeof value === "object" && value !== null) {
    return Object.entries(value).every(([key, item]) => key.isWellFormed() && wellFormed(item));
  }
  return true;
}

function classifyJoseError(error: unknown): TokenError {
  if (error instanceof errors.JWTExpired) return new TokenError("token_expired", "exp has passed");
  if (error instanceof errors.JWTClaimValidationFailed) {
    switch (error.claim) {
      case "nbf":
        return new TokenError(
          "token_not_yet_valid",
          "nbf is in the future beyond the clock tolerance",
        );
      case "iss":
        return new TokenError("token_wrong_issuer", "iss is not the expected issuer");
      case "aud":
        return new TokenError("token_wrong_audience", "aud does not name this protected resource");
      case "typ":
        return new TokenError("token_wrong_type", "the typ header is not the required type");
      default:
        return error.reason === "missing"
          ? new TokenError("token_claim_missing", `the ${error.claim} claim is required`)
          : new TokenError("token_claim_invalid", `the ${error.claim} claim is invalid`);
    }
  }
  if (error instanceof errors.JWSSignatureVerificationFailed) {
    return new TokenError("token_bad_signature", "the signature does not verify");
  }
  if (error instanceof errors.JOSEAlgNotAllowed) {
    return new TokenError("token_alg_not_allowed", "alg is not allowed for this issuer");
  }
  if (
    (error instanceof errors.JOSENotSupported || error instanceof errors.JWSInvalid) &&
    /crit|Extension Header Parameter/i.test(error.message)
  ) {
    return new TokenError(
      "token_crit_unsupported",
      "the token marks a header critical that is not understood",
    );
  }
  if (error instanceof errors.JOSENotSupported) {
    return new TokenError(
      "token_alg_not_allowed",
      "the token's algorithm or key type is not supported",
    );
  }
  return new TokenError("token_malformed", "the token is not a well-formed signed JWT");
}
