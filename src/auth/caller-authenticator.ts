import { createHash, timingSafeEqual } from "node:crypto";
import { ApiError } from "../errors.ts";
import { apiPermissions, type ApiPermission } from "../config/index.ts";
import type { Caller } from "./caller.ts";

/** A configured caller: how it proves itself and what it may do. */
export interface CallerCredentials {
  name: string;
  /** SHA-256 digests (32 bytes each) of the caller's API keys; several allow rotation. */
  apiKeyDigests: readonly Buffer[];
  /** Client-certificate subject CNs or DNS SANs that identify this caller over mTLS. */
  mtlsSubjects: readonly string[];
  permissions: readonly ApiPermission[];
  assertSubject: boolean;
}

export interface CallerAuthenticatorOptions {
  /** Undefined: caller authentication is off and every caller is the anonymous one. */
  callers: readonly CallerCredentials[] | undefined;
  /** Digests of keys that open only the ops endpoints; empty with `opsOpen`. */
  opsKeyDigests: readonly Buffer[];
  /** Whether /health, /ready (and /metrics) need no credentials. */
  opsOpen: boolean;
  /** Told about every refusal: `unauthenticated` (401) or `forbidden` (403). */
  onFailure?: (reason: "unauthenticated" | "forbidden", permission: ApiPermission) => void;
}

/** The header carrying an API key. Not Authorization: that belongs to the end user's token. */
export const apiKeyHeader = "x-api-key";

const challenge = { "www-authenticate": `ApiKey realm="mcp-pdp", header="X-Api-Key"` };

/** With caller authentication off (loopback development), one caller may do everything. */
const anonymousCaller: Caller = {
  name: "anonymous",
  permissions: new Set<ApiPermission>([...apiPermissions, "ops"]),
  assertSubject: true,
};

const opsCaller: Caller = {
  name: "ops",
  permissions: new Set<ApiPermission>(["ops"]),
  assertSubject: false,
};

/** SHA-256 of an API key, as stored in configuration. */
export function digestApiKey(key: string): Buffer {
  return createHash("sha256").update(key, "utf8").digest();
}

/**
 * What identifies a PDP caller: the request's headers (lower-case names) and,
 * over mTLS, the verified certificate's names. An ApiRequest is one; auth/
 * does not depend on the API layer for it.
 */
export interface PresentedCredentials {
  headers: Readonly<Record<string, string | string[] | undefined>>;
  tlsClient?: { names: string[] } | undefined;
}

/**
 * Authenticates the PDP's own callers by mTLS client certificate or API key
 * (`X-Api-Key`, compared as SHA-256 digests in constant time against every
 * configured digest) and checks the caller's permission for the endpoint.
 * Missing or unknown credentials: 401 with WWW-Authenticate; a known caller
 * without the permission: 403.
 */
export class CallerAuthenticator {
  private readonly callers: readonly (CallerCredentials & { caller: Caller })[] | undefined;
  private readonly opsKeyDigests: readonly Buffer[];
  private readonly opsOpen: boolean;
  private readonly onFailure: NonNullable<CallerAuthenticatorOptions["onFailure"]>;

  constructor(options: CallerAuthenticatorOptions) {
    this.callers = options.callers?.map((credentials) => ({
      ...credentials,
      caller: {
        name: credentials.name,
        permissions: new Set(credentials.permissions),
        assertSubject: credentials.assertSubject,
      },
    }));
    this.opsKeyDigests = options.opsKeyDigests;
    this.opsOpen = options.opsOpen;
    this.onFailure = options.onFailure ?? (() => undefined);
  }

  /** Whether callers must authenticate at all. */
  get enabled(): boolean {
    return this.callers !== undefined;
  }

  authenticate(request: PresentedCredentials, permission: ApiPermission): Caller {
    if (permission === "ops" && this.opsOpen) return anonymousCaller;
    if (this.callers === undefined && permission !== "ops") return anonymousCaller;
    const caller = this.identify(request, permission);
    if (caller === undefined) {
      this.onFailure("unauthenticated", permission);
      throw new ApiError(
        "caller_unauthenticated",
        "the PDP's API needs caller credentials (X-Api-Key or a client certificate)",
        undefined,
        challenge,
      );
    }
    if (!caller.permissions.has(permission)) {
      this.onFailure("forbidden", permission);
      throw new ApiError(
        "caller_forbidden",
        `caller ${caller.name} may not use the ${permission} endpoints`,
      );
    }
    return caller;
  }

  /**
   * Every caller the request's credentials name (certificate, API key, ops
   * key), preferring one that holds the permission: a probe presenting a
   * decision caller's certificate and the ops key is still an ops caller.
   */
  private identify(request: PresentedCredentials, permission: ApiPermission): Caller | undefined {
    const callers = this.callers ?? [];
    const matches: Caller[] = [];
    const certificateNames = request.tlsClient?.names ?? [];
    if (certificateNames.length > 0) {
      const byCertificate = callers.find((c) =>
        c.mtlsSubjects.some((s) => certificateNames.includes(s)),
      );
      if (byCertificate !== undefined) matches.push(byCertificate.caller);
    }
    const header = request.headers[apiKeyHeader];
    const key = Array.isArray(header) ? header[0] : header;
    if (key !== undefined && key !== "") {
      const digest = digestApiKey(key);
      // Compare against every digest, without stopping early, so timing says nothing about which matched.
      let byKey: Caller | undefined;
      for (const candidate of callers) {
        for (const stored of candidate.apiKeyDigests) {
          if (timingSafeEqual(stored, digest) && byKey === undefined) byKey = candidate.caller;
        }
      }
      for (const stored of this.opsKeyDigests) {
        if (timingSafeEqual(stored, digest) && byKey === undefined && permission === "ops") {
          byKey = opsCaller;
        }
      }
      if (byKey !== undefined) matches.push(byKey);
    }
    return matches.find((caller) => caller.permissions.has(permission)) ?? matches[0];
  }
}
