import { readFileSync } from "node:fs";
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  customFetch,
  errors,
  importSPKI,
  type CryptoKey,
  type JSONWebKeySet,
  type JWTVerifyGetKey,
} from "jose";
import { TokenError } from "./token-error.js";

/** Where an issuer's verification keys come from. */
export interface KeySource {
  /** Resolves the key for a token's protected header; jose calls it during verification. */
  readonly getKey: JWTVerifyGetKey;
  /** Turns a key-lookup failure into a TokenError, or returns undefined if it is not one. */
  classify(error: unknown): TokenError | undefined;
}

export interface RemoteJwksOptions {
  url: URL;
  /** Abort a JWKS fetch after this long. */
  timeoutMs: number;
  /** An unknown `kid` triggers a refetch at most this often. */
  cooldownMs: number;
  /** Refetch in the background this often, so removed keys stop verifying. */
  refreshMs: number;
  /** Told about every fetch: undefined when it succeeded, else the error (for logs and metrics). */
  onFetch?: (error: unknown) => void;
}

/**
 * A remote JWKS (jose's createRemoteJWKSet) that keeps verifying with the keys
 * it has while the JWKS endpoint is down: jose would refetch, and fail, on
 * every request once its cache is stale, so its cache never goes stale here
 * and a background refresh replaces the keys when a fetch succeeds. An unknown
 * `kid` still refetches (at most once per cooldown); when the endpoint is down
 * that is `jwks_unavailable`, otherwise `token_unknown_key`.
 */
export class RemoteJwksKeySource implements KeySource {
  readonly getKey: JWTVerifyGetKey;
  private readonly jwks: ReturnType<typeof createRemoteJWKSet>;
  private lastFetchFailed = false;
  private lastFailureAt = 0;
  private lastRefresh = Date.now();
  private readonly refreshMs: number;

  constructor(options: RemoteJwksOptions) {
    this.refreshMs = options.refreshMs;
    const fetchAndRecord = async (url: string, init: RequestInit): Promise<Response> => {
      // jose starts its refetch cooldown only after a successful fetch; while the endpoint is
      // failing, hold back here too, so unknown kids cannot hammer an issuer that is down.
      if (this.lastFetchFailed && Date.now() - this.lastFailureAt < options.cooldownMs) {
        throw new TypeError("JWKS endpoint failed recently; waiting out the cooldown");
      }
      try {
        const response = await fetch(url, init);
        this.lastFetchFailed = response.status !== 200;
        if (this.lastFetchFailed) this.lastFailureAt = Date.now();
        options.onFetch?.(
          this.lastFetchFailed ? new Error(`JWKS answered ${response.status}`) : undefined,
        );
        return response;
      } catch (error) {
        this.lastFetchFailed = true;
        this.lastFailureAt = Date.now();
        options.onFetch?.(error);
        throw error;
      }
    };
    this.jwks = createRemoteJWKSet(options.url, {
      timeoutDuration: options.timeoutMs,
      cooldownDuration: options.cooldownMs,
      cacheMaxAge: Number.POSITIVE_INFINITY,
      [customFetch]: fetchAndRecord,
    });
    this.getKey = async (header, token) => {
      this.refreshInBackground();
      return this.jwks(header, token);
    };
  }

  private refreshInBackground(): void {
    if (Date.now() - this.lastRefresh < this.refreshMs || this.jwks.reloading) return;
    this.lastRefresh = Date.now();
    // Failures are recorded by the fetch wrapper; the keys in hand stay in use.
    this.jwks.reload().catch(() => undefined);
  }

  classify(error: unknown): TokenError | undefined {
    if (
      error instanceof errors.JWKSNoMatchingKey ||
      error instanceof errors.JWKSMultipleMatchingKeys
    ) {
      return this.lastFetchFailed
        ? new TokenError(
            "jwks_unavailable",
            "no key for the token's kid and the JWKS endpoint is unreachable",
          )
        : new TokenError(
            "token_unknown_key",
            "no key in the issuer's JWKS matches the token's kid and alg",
          );
    }
    if (
      error instanceof errors.JWKSTimeout ||
      error instanceof errors.JWKSInvalid ||
      (error instanceof errors.JOSEError && error.code === "ERR_JOSE_GENERIC") ||
      error instanceof TypeError
    ) {
      return new TokenError("jwks_unavailable", "the issuer's JWKS could not be fetched");
    }
    return undefined;
  }
}

/** Keys from a local JWKS file, read once at startup. */
export class LocalJwksKeySource implements KeySource {
  readonly getKey: JWTVerifyGetKey;

  constructor(jwks: JSONWebKeySet) {
    this.getKey = createLocalJWKSet(jwks);
  }

  static fromFile(path: string): LocalJwksKeySource {
    return new LocalJwksKeySource(JSON.parse(readFileSync(path, "utf8")) as JSONWebKeySet);
  }

  classify(error: unknown): TokenError | undefined {
    if (
      error instanceof errors.JWKSNoMatchingKey ||
      error instanceof errors.JWKSMultipleMatchingKeys
    ) {
      return new TokenError(
        "token_unknown_key",
        "no key in the configured JWKS matches the token's kid and alg",
      );
    }
    return undefined;
  }
}

/**
 * PEM public keys (SPKI). WebCrypto binds a key to one algorithm, so each key
 * is imported for every allowed algorithm its type serves. Tokens carry no
 * hint for PEM keys, so at most one key may serve each algorithm.
 */
export class PemKeySource implements KeySource {
  readonly getKey: JWTVerifyGetKey;

  private constructor(keysByAlg: Map<string, CryptoKey>) {
    this.getKey = (header) => {
      const key = keysByAlg.get(header.alg);
      if (key === undefined) throw new errors.JWKSNoMatchingKey();
      return key;
    };
  }

  static async fromPem(
    pems: readonly string[],
    algorithms: readonly string[],
  ): Promise<PemKeySource> {
    const keysByAlg = new Map<string, CryptoKey>();
    for (const alg of algorithms) {
      for (const pem of pems) {
        let key: CryptoKey;
        try {
          key = await importSPKI(pem, alg);
        } catch {
          // This key's type does not serve this algorithm (an EC key and RS256, say).
          continue;
        }
        if (keysByAlg.has(alg)) {
          // Without kid a token cannot say which key signed it: use a JWKS file for several keys.
          throw new Error(`two PEM keys serve ${alg}; use a JWKS file (with kid) for several keys`);
        }
        keysByAlg.set(alg, key);
      }
    }
    return new PemKeySource(keysByAlg);
  }

  classify(error: unknown): TokenError | undefined {
    if (error instanceof errors.JWKSNoMatchingKey) {
      return new TokenError("token_unknown_key", "no configured PEM key serves the token's alg");
    }
    return undefined;
  }
}
