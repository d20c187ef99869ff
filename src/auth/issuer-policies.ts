import { readFileSync } from "node:fs";
import { StartupError } from "../errors.ts";
import type { Clock } from "../decision/decision-engine.ts";
import type { CallerCredentials } from "./caller-authenticator.ts";
import type { AuthSettings, IssuerSettings } from "../config/index.ts";
import type { IssuerPolicy } from "./jwt-verifier.ts";
import {
  LocalJwksKeySource,
  PemKeySource,
  RemoteJwksKeySource,
  type KeySource,
} from "./key-sources.ts";

/**
 * Builds each configured issuer's verification policy and key source. Local
 * key files are read now, so a missing or unreadable file stops the start.
 * `now` is the PDP's clock: remote JWKS cooldowns and refreshes are timed by it.
 * `onJwksFetch` hears of every remote JWKS fetch: the error, or undefined.
 */
export async function buildIssuerPolicies(
  issuers: readonly IssuerSettings[],
  now: Clock,
  onJwksFetch: (issuer: string, error: unknown) => void,
): Promise<IssuerPolicy[]> {
  const problems: string[] = [];
  const policies: IssuerPolicy[] = [];
  for (const [index, settings] of issuers.entries()) {
    try {
      policies.push({
        issuer: settings.issuer,
        audiences: settings.audiences,
        algorithms: settings.algorithms,
        requiredTyp: settings.requiredTyp,
        clockToleranceS: settings.clockToleranceS,
        maxTokenBytes: settings.maxTokenBytes,
        subjectType: settings.subjectType,
        keys: await keySource(settings, onJwksFetch, now),
      });
    } catch (error) {
      problems.push(
        `PDP_CONFIG issuers[${index}]: ${error instanceof Error ? error.message : String(error)}`,
      );
    }
  }
  if (problems.length > 0) throw new StartupError("config_invalid", problems);
  return policies;
}

async function keySource(
  settings: IssuerSettings,
  onJwksFetch: (issuer: string, error: unknown) => void,
  now: Clock,
): Promise<KeySource> {
  const keys = settings.keys;
  if ("jwksUri" in keys) {
    return new RemoteJwksKeySource({
      url: new URL(keys.jwksUri),
      timeoutMs: settings.jwksTimeoutMs,
      cooldownMs: settings.jwksCooldownS * 1000,
      refreshMs: settings.jwksRefreshS * 1000,
      algorithms: settings.algorithms,
      now,
      onFetch: (error) => {
        onJwksFetch(settings.issuer, error);
      },
    });
  }
  if ("jwksFile" in keys) return LocalJwksKeySource.fromFile(keys.jwksFile);
  const pems = keys.publicKeyFiles.map((file) => readFileSync(file, "utf8"));
  return PemKeySource.fromPem(pems, settings.algorithms);
}

/** The callers section as the authenticator wants it: digests as bytes. */
export function callerCredentials(settings: AuthSettings): CallerCredentials[] | undefined {
  return settings.callers?.map((caller) => ({
    name: caller.name,
    apiKeyDigests: caller.apiKeySha256.map((hex) => Buffer.from(hex, "hex")),
    mtlsSubjects: caller.mtlsSubjects,
    permissions: caller.permissions,
    assertSubject: caller.assertSubject,
  }));
}
