import { readFileSync } from "node:fs";
import {
  createLocalJWKSet,
  errors,
  importJWK,
  importSPKI,
  type CryptoKey,
  type JSONWebKeySet,
  type JWK,
  type JWTVerifyGetKey,
} from "jose";
import type { Clock } from "../decision/decision-engine.ts";
import { TokenError } from "../errors.ts";

/** Where an issuer's verification keys come from. */
export interface KeySource {
  /** Resolves the key for a token's protected header; jose calls it during verification. */
  readonly getKey: JWTVerifyGetKey;
  /** Turns a key-lookup failure into a TokenError, or returns undefined if it is not one. */
  classify(error: unknown): TokenError | undefined;
}

export interface RemoteJwksOptions {
  url: URL;
  /** Abort a JWKS fetch (body included) after this long. */
  timeoutMs: number;
  /** After any fetch, an unknown `kid` (or a missing key set) fetches again at most this often. */
  cooldownMs: number;
  /** Refetch in the background this often, so removed keys stop verifying. */
  refreshMs: number;
  /** The issuer's algorithms: a key that imports for none of them is not usable. */
  algorithms: readonly string[];
  /** Told about every fetch: undefined when it succeeded, else the error (for logs and metrics). */
  onFetch?: (error: unknown) => void;
  /** The PDP's clock, which times the cooldown and the refresh (tests move it). */
  now: Clock;
}

/** The largest JWKS body read: a key set is a few KB; a bigger answer is not one. */
export const maxJwksBytes = 1024 * 1024;

/** A fetch that gave no usable key set, or none was attempted during the cooldown. */
class JwksUnavailable extends Error {
  override readonly name = "JwksUnavailable";
}

/**
 * A remote JWKS that keeps verifying with the keys it has while the JWKS
 * endpoint is down or answers nonsense. Every fetch, whatever its outcome,
 * starts the cooldown: within it an unknown `kid` is answered from the keys
 * in hand (`token_unknown_key`, or `jwks_unavailable` when the last fetch
 * failed) without asking the endpoint again, so a stream of tokens with
 * made-up kids costs the issuer one request per cooldown. A fetch fails
 * unless it is a 200 within the timeout whose body (at most maxJwksBytes) is
 * a JSON key set with at least one key that imports for the issuer's
 * algorithms; then the keys in hand are kept. Keys are replaced only by a
 * successful fetch: on an unknown `kid` after the cooldown, or in the
 * background every `refreshMs`, so removed keys stop verifying.
 */
export class RemoteJwksKeySource implements KeySource {
  readonly getKey: JWTVerifyGetKey;
  private readonly options: RemoteJwksOptions;
  private readonly now: Clock;
  private keys: JWTVerifyGetKey | undefined;
  private lastFetchFailed = false;
  /** When the last fetch ended (success or failure). */
  private lastFetchAt = Number.NEGATIVE_INFINITY;
  private pending: Promise<void> | undefined;

  constructor(options: RemoteJwksOptions) {
    this.options = options;
    this.now = options.now;
    this.getKey = async (header, token) => {
      this.refreshInBackground();
      if (this.keys === undefined) await this.fetchUnlessCoolingDown();
      const keys = this.keys;
      if (keys === undefined) throw new JwksUnavailable("no key set could be fetched yet");
      try {
        return await keys(header, token);
      } catch (error) {
        if (!(error instanceof errors.JWKSNoMatchingKey)) throw error;
        // An unknown kid: perhaps a new key; ask the endpoint unless it was asked recently.
        if (!(await this.fetchUnlessCoolingDown())) throw error;
        return (this.keys ?? keys)(header, token);
      }
    };
  }

  /** Fetches (or joins the fetch in flight) unless within the cooldown; whether a fetch ran. */
  private async fetchUnlessCoolingDown(): Promise<boolean> {
    if (this.pending === undefined) {
      if (this.now() - this.lastFetchAt < this.options.cooldownMs) return false;
      this.startFetch();
    }
    await this.pending;
    return true;
  }

  private refreshInBackground(): void {
    if (this.pending !== undefined) return;
    if (this.now() - this.lastFetchAt < this.options.refreshMs) return;
    // The first key lookup fetches in the foreground; this is for key sets already in hand.
    if (this.keys === undefined) return;
    this.startFetch();
  }

  private startFetch(): void {
    const fetching = this.fetchKeySet().then(
      (keys) => {
        this.keys = keys;
        this.lastFetchFailed = false;
        this.options.onFetch?.(undefined);
      },
      (error: unknown) => {
        this.lastFetchFailed = true;
        this.options.onFetch?.(error);
      },
    );
    this.pending = fetching.finally(() => {
      this.lastFetchAt = this.now();
      this.pending = undefined;
    });
  }

  /** One fetch: the usable key set, or an error saying why there is none. */
  private async fetchKeySet(): Promise<JWTVerifyGetKey> {
    const signal = AbortSignal.timeout(this.options.timeoutMs);
    const response = await fetch(this.options.url, {
      method: "GET",
      redirect: "manual",
      signal,
      headers: { accept: "application/jwk-set+json, application/json" },
    });
    if (response.status !== 200) {
      await response.body?.cancel();
      throw new JwksUnavailable(`JWKS answered ${response.status}`);
    }
    const text = await readBounded(response, maxJwksBytes);
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      throw new JwksUnavailable("JWKS answered 200 with a body that is not JSON");
    }
    const keys = (body as { keys?: unknown } | null)?.keys;
    if (typeof body !== "object" || body === null || !Array.isArray(keys)) {
      throw new JwksUnavailable('JWKS answered 200 without a "keys" list');
    }
    const usable: JWK[] = [];
    for (const key of keys) {
      if (await importsForAny(key, this.options.algorithms)) usable.push(key as JWK);
    }
    if (keys.length > 0 && usable.length === 0) {
      throw new JwksUnavailable("none of the JWKS keys imports for the issuer's algorithms");
    }
    return createLocalJWKSet({ keys: usable });
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
      error instanceof JwksUnavailable ||
      error instanceof errors.JWKSInvalid ||
      (error instanceof errors.JOSEError && error.code === "ERR_JOSE_GENERIC")
    ) {
      return new TokenError("jwks_unavailable", "the issuer's JWKS could not be fetched");
    }
    return undefined;
  }
}

/** The body as text, refused past `maxBytes` (declared or actual) without reading the rest. */
async function readBounded(response: Response, maxBytes: number): Promise<string> {
  const declared = Number(response.headers.get("content-length") ?? "0");
  if (declared > maxBytes) {
    await response.body?.cancel();
    throw new JwksUnavailable(`JWKS body of ${declared} bytes exceeds ${maxBytes}`);
  }
  const reader = (response.body as ReadableStream<Uint8Array> | null)?.getReader();
  if (reader === undefined) return "";
  const chunks: Uint8Array[] = [];
  let length = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    length += value.byteLength;
    if (length > maxBytes) {
      await reader.cancel();
      throw new JwksUnavailable(`JWKS body exceeds ${maxBytes} bytes`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/** Whether a JWKS member is a key that imports for at least one of the algorithms. */
async function importsForAny(key: unknown, algorithms: readonly string[]): Promise<boolean> {
  if (typeof key !== "object" || key === null || Array.isArray(key)) return false;
  const jwk = key as JWK;
  // A key that names its algorithm serves that one only.
  const candidates = typeof jwk.alg === "string" ? [jwk.alg] : algorithms;
  for (const alg of candidates) {
    if (!algorithms.includes(alg)) continue;
    try {
      const imported = await importJWK(jwk, alg);
      if (!(imported instanceof Uint8Array) && imported.type === "public") return true;
    } catch {
      // Not this algorithm's key type, or not a key at all.
    }
  }
  return false;
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
