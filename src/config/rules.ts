/**
 * Rules that span keys, run after the schema. Each rule reads only sections
 * that passed the schema, so a broken section hides none of the problems of
 * the others: one run reports everything it can know.
 */
import { canonicalResource, metadataUrlFor } from "../protocol/resource-uri.ts";
import type { ServerSettings } from "./resolve-config.ts";
import type { KeyProblem } from "./config-error.ts";
import type { KeyPath } from "./environment.ts";
import type { ConfigFile, ServerEntry } from "./schema.ts";

/**
 * The sections that passed the schema; absent: the section failed it (or
 * cannot be known). The sections named Partial keep their valid keys even
 * when another key of theirs failed, so a wrong timeout hides no port clash.
 */
export type ValidSections = {
  [Name in keyof ConfigFile]?: {
    value: Name extends "server" | "limits" | "forward_auth"
      ? Partial<ConfigFile[Name]>
      : ConfigFile[Name];
  };
};

/** How a problem names another key: the variable that set it, or its file key. */
export type KeyNamer = (key: KeyPath) => string;

export interface RuleFindings {
  problems: KeyProblem[];
  /** The servers registry, when `servers` and `forward_auth` passed the schema. */
  servers?: ServerSettings[];
  /** Settings that work but deserve an operator's attention (logged loudly at startup). */
  warnings: string[];
}

/** Whether a listen address is reachable only from this machine. */
export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

export function checkRules(sections: ValidSections, name: KeyNamer): RuleFindings {
  const findings: RuleFindings = { problems: [], warnings: [] };
  const problem = (key: KeyPath, message: string): void => {
    findings.problems.push({ key, message });
  };
  const server = sections.server?.value;
  const limits = sections.limits?.value;
  const ops = sections.ops?.value;
  const servers = sections.servers?.value;
  const forwardAuth = sections.forward_auth?.value;
  const issuers = sections.issuers?.value;
  // Optional sections: absent means "not configured", so only a failed one is unknown.
  const callersKnown = sections.callers !== undefined;
  const callers = sections.callers?.value;
  const tlsKnown = sections.tls !== undefined;
  const tls = sections.tls?.value;

  if (server !== undefined) {
    const { headers_timeout_ms: headers, request_timeout_ms: request } = server;
    // node:http refuses a headers timeout longer than the request timeout (it could never fire).
    if (headers !== undefined && request !== undefined && headers > request) {
      problem(
        ["server", "headers_timeout_ms"],
        `must not exceed ${name(["server", "request_timeout_ms"])} (${request})`,
      );
    }
    if (server.probe_port !== undefined && server.probe_port !== 0) {
      if (server.probe_port === server.port) {
        problem(["server", "probe_port"], `is also ${name(["server", "port"])}`);
      }
      if (server.probe_port === server.metrics_port) {
        problem(["server", "probe_port"], `is also ${name(["server", "metrics_port"])}`);
      }
    }
    if (
      callersKnown &&
      callers === undefined &&
      server.host !== undefined &&
      !isLoopback(server.host) &&
      // A value that is not true or false allows nothing.
      server.allow_unauthenticated_callers !== true
    ) {
      problem(
        ["server", "host"],
        `a non-loopback address needs caller authentication (callers in PDP_CONFIG); to run without it anyway set ${name(["server", "allow_unauthenticated_callers"])}=true`,
      );
    }
  }
  const policy = sections.policy?.value;
  if (policy !== undefined) checkPolicySources(policy, problem, name);
  if (policy?.service !== undefined && policy.bundle !== undefined) {
    findings.warnings.push(
      `${name(["policy", "bundle"])} is not read: the bundle comes from policy.service (policy.data is still merged over it)`,
    );
  }

  const batch = limits?.max_batch_input_bytes;
  const body = server?.max_body_bytes;
  if (batch !== undefined && body !== undefined && batch < body) {
    problem(
      ["limits", "max_batch_input_bytes"],
      `must be at least ${name(["server", "max_body_bytes"])} (${body}), which one batch's body alone may reach`,
    );
  }

  if (callers !== undefined) {
    const names = new Set<string>();
    callers.forEach((caller, index) => {
      if (names.has(caller.name)) {
        problem(["callers", index, "name"], `${caller.name} is used twice`);
      }
      names.add(caller.name);
      if (caller.api_key_sha256.length === 0 && caller.mtls_subjects.length === 0) {
        problem(["callers", index], "needs api_key_sha256 or mtls_subjects");
      }
    });
    const mtls = callers.some((c) => c.mtls_subjects.length > 0);
    if (mtls && tlsKnown && tls?.client_ca_file === undefined) {
      problem(
        ["tls", "client_ca_file"],
        "callers identified by mtls_subjects need an mTLS listener",
      );
    }
  }

  if (ops !== undefined && callersKnown) {
    const opsCaller = callers?.some((c) => c.permissions.includes("ops")) === true;
    const open = ops.open ?? ops.api_key_sha256.length === 0;
    if (open && ops.api_key_sha256.length > 0) {
      problem(["ops"], "open is true, so api_key_sha256 would be ignored; drop one of them");
    }
    if (!open && ops.api_key_sha256.length === 0 && !opsCaller) {
      problem(
        ["ops"],
        "closed, but no ops key and no caller with the ops permission: probes could never pass",
      );
    }
    if (ops.metrics_open === false && ops.api_key_sha256.length === 0 && !opsCaller) {
      problem(
        ["ops", "metrics_open"],
        "false, but no ops key and no caller with the ops permission: /metrics could never be scraped",
      );
    }
    // One credential must name one caller: otherwise the file's order decides who asks.
    const owners = new Map<string, string>();
    const claim = (credential: string, owner: string, key: KeyPath): void => {
      const previous = owners.get(credential);
      if (previous !== undefined && previous !== owner) {
        problem(key, `also names ${previous}; one credential must identify one caller`);
      }
      owners.set(credential, owner);
    };
    callers?.forEach((caller, index) => {
      caller.api_key_sha256.forEach((digest, k) => {
        claim(`key:${digest.toLowerCase()}`, `callers[${index}]`, [
          "callers",
          index,
          "api_key_sha256",
          k,
        ]);
      });
      caller.mtls_subjects.forEach((subject, k) => {
        claim(`tls:${subject}`, `callers[${index}]`, ["callers", index, "mtls_subjects", k]);
      });
    });
    ops.api_key_sha256.forEach((digest, k) => {
      claim(`key:${digest.toLowerCase()}`, "ops", ["ops", "api_key_sha256", k]);
    });
  }

  if (forwardAuth?.mcp_headers_without_body === "ignore") {
    findings.warnings.push(
      "forward_auth.mcp_headers_without_body is deprecated: ignore is the default; servers.<name>.enforces_mcp_headers marks servers whose headers may be believed",
    );
  }
  if (servers !== undefined && forwardAuth !== undefined) {
    const registry = serverRegistry(servers, forwardAuth.servers ?? {}, findings);
    findings.servers = registry;
    if (issuers !== undefined) checkIssuerAudiences(issuers, registry, findings);
  }
  return findings;
}

/**
 * The `servers` registry, also read from the deprecated `forward_auth.servers`:
 * one name, one resource, each once.
 */
export function serverRegistry(
  servers: Readonly<Record<string, ServerEntry>>,
  legacy: Readonly<Record<string, ServerEntry>>,
  findings: RuleFindings,
): ServerSettings[] {
  if (Object.keys(legacy).length > 0) {
    findings.warnings.push(
      "forward_auth.servers is deprecated: move it to the top-level servers (every API uses it)",
    );
  }
  const entries: [string, ServerEntry, KeyPath][] = [
    ...Object.entries(servers).map(([name, server]): [string, ServerEntry, KeyPath] => [
      name,
      server,
      ["servers", name],
    ]),
    ...Object.entries(legacy).map(([name, server]): [string, ServerEntry, KeyPath] => [
      name,
      server,
      ["forward_auth", "servers", name],
    ]),
  ];
  const registry: ServerSettings[] = [];
  const byName = new Map<string, string>();
  const byResource = new Map<string, string>();
  for (const [name, server, key] of entries) {
    const where = key.join(".");
    const earlier = byName.get(name);
    if (earlier !== undefined) {
      findings.problems.push({ key, message: `${name} is also defined at ${earlier}` });
      continue;
    }
    byName.set(name, where);
    // The schema accepted only canonical spellings.
    const resource = server.resource;
    const sameResource = byResource.get(resource);
    if (sameResource !== undefined) {
      findings.problems.push({
        key: [...key, "resource"],
        message: `${resource} is also the resource of ${sameResource}`,
      });
    }
    byResource.set(resource, where);
    if (server.enforces_mcp_headers) {
      findings.warnings.push(
        `${where}.enforces_mcp_headers: true — Mcp-Method/Mcp-Name from clients are believed for ${name} when no body is visible; this is safe only if that MCP server refuses requests whose headers and body disagree (SEP-2243)`,
      );
    }
    if (server.speaks_mcp_2026_07_28) {
      findings.warnings.push(
        `${where}.speaks_mcp_2026_07_28: true — requests to ${name} declaring MCP 2026-07-28 are decided from Mcp-Method/Mcp-Name when no body is visible; this is safe only if that MCP server speaks 2026-07-28 and refuses requests whose headers and body disagree`,
      );
    }
    registry.push({
      name,
      resource,
      resourceMetadata: server.resource_metadata ?? metadataUrlFor(resource),
      enforcesMcpHeaders: server.enforces_mcp_headers,
      speaksMcp20260728: server.speaks_mcp_2026_07_28,
      proxy: server.proxy,
    });
  }
  return registry;
}

/** An issuer's `audiences` restrict it to registered servers; anything else can never verify. */
function checkIssuerAudiences(
  issuers: ConfigFile["issuers"],
  servers: readonly ServerSettings[],
  findings: RuleFindings,
): void {
  const resources = new Set(servers.map((server) => server.resource));
  if (issuers.length > 0 && servers.length === 0) {
    findings.warnings.push(
      "issuers are configured but servers is empty: every token will be refused (server_unknown); register the protected MCP servers under servers",
    );
  }
  issuers.forEach((issuer, index) => {
    issuer.audiences?.forEach((audience, k) => {
      const canonical = canonicalResource(audience);
      if (canonical !== undefined && canonical !== audience) {
        findings.problems.push({
          key: ["issuers", index, "audiences", k],
          message: `write the canonical spelling ${canonical}`,
        });
      } else if (!resources.has(audience)) {
        findings.warnings.push(
          `issuers[${index}].audiences[${k}]: ${audience} is not the resource of any server in servers; tokens for it are refused`,
        );
      }
    });
  });
}

/** The bundle service and signing keys: what the schema cannot see key by key. */
function checkPolicySources(
  policy: ConfigFile["policy"],
  problem: (key: KeyPath, message: string) => void,
  name: KeyNamer,
): void {
  const service = policy.service;
  if (service !== undefined) {
    if (service.min_delay_s > service.max_delay_s) {
      problem(
        ["policy", "service", "min_delay_s"],
        `must not exceed ${name(["policy", "service", "max_delay_s"])} (${service.max_delay_s})`,
      );
    }
    const credentials = service.credentials;
    if (credentials.bearer_token_file !== undefined && credentials.bearer_token_env !== undefined) {
      problem(
        ["policy", "service", "credentials", "bearer_token_env"],
        `one bearer token source: also ${name(["policy", "service", "credentials", "bearer_token_file"])}`,
      );
    }
    if (
      (credentials.client_cert_file === undefined) !==
      (credentials.client_key_file === undefined)
    ) {
      problem(
        ["policy", "service", "credentials"],
        "client_cert_file and client_key_file go together",
      );
    }
    if (service.persisted_max_age_s !== undefined && service.persist_dir === undefined) {
      problem(
        ["policy", "service", "persisted_max_age_s"],
        `needs ${name(["policy", "service", "persist_dir"])}`,
      );
    }
  }
  const signing = policy.signing;
  if (signing !== undefined) {
    const ids = new Set<string>();
    signing.keys.forEach((key, index) => {
      if (ids.has(key.id))
        problem(["policy", "signing", "keys", index, "id"], `${key.id} is used twice`);
      ids.add(key.id);
    });
    if (signing.keyid !== undefined && !ids.has(signing.keyid)) {
      problem(
        ["policy", "signing", "keyid"],
        `${signing.keyid} is not the id of a key in policy.signing.keys`,
      );
    }
  }
}
