import { readFileSync } from "node:fs";
import { Ajv, type ErrorObject } from "ajv";
import { parse as parseYaml } from "yaml";
import { parseCidr } from "../net/client-address.js";
import { apiPermissions, type ApiPermission } from "./caller.js";
import {
  canonicalResource,
  knownProxies,
  metadataUrlFor,
  serverNamePattern,
  type ProxyKind,
  type ServerSettings,
} from "./servers.js";

/** Asymmetric JWS algorithms: the only ones a resource server can verify without sharing a secret. */
export const asymmetricAlgorithms = [
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "ES256",
  "ES384",
  "ES512",
  "EdDSA",
] as const;

/** One trusted token issuer, as configured. */
export interface IssuerSettings {
  issuer: string;
  keys: { jwksUri: string } | { jwksFile: string } | { publicKeyFiles: string[] };
  /**
   * The resources this issuer may mint tokens for; undefined: any registered
   * server. A token is always checked against the one server it is used for.
   */
  audiences: string[] | undefined;
  algorithms: string[];
  requiredTyp: string | undefined;
  clockToleranceS: number;
  maxTokenBytes: number;
  jwksTimeoutMs: number;
  jwksCooldownS: number;
  jwksRefreshS: number;
  subjectType: { claim: string | undefined; clientCredentials: string; default: string };
}

/** One caller of the PDP's API, as configured. */
export interface CallerSettings {
  name: string;
  apiKeySha256: string[];
  mtlsSubjects: string[];
  permissions: ApiPermission[];
  assertSubject: boolean;
}

/** The identity section of the PDP_CONFIG file: token issuers, callers, ops access, TLS. */
export interface AuthSettings {
  issuers: IssuerSettings[];
  tokenCacheEntries: number;
  /** Undefined when the file has no `callers`: caller authentication is off. */
  callers: CallerSettings[] | undefined;
  /**
   * `metricsOpen`: /metrics without credentials. Off once `callers` are
   * configured (decision counts, reasons and tool names describe traffic);
   * `ops.metrics_open: true` opts back in.
   */
  ops: { open: boolean; apiKeySha256: string[]; metricsOpen: boolean };
  tls: { certFile: string; keyFile: string; clientCaFile: string | undefined } | undefined;
  /** The protected MCP servers (`servers:`): every token is bound to one of them. */
  servers: ServerSettings[];
  forwardAuth: ForwardAuthSettings;
  /** Settings that work but deserve an operator's attention (logged loudly at startup). */
  warnings: string[];
}

/** How the forward-auth endpoint reads requests relayed by proxies. */
export interface ForwardAuthSettings {
  /** CIDRs of proxies whose X-Forwarded-For and context headers are believed. */
  trustedProxies: string[];
  batch: "reject" | "authorize_each";
  /** Larger tool-call arguments are not passed to the policy (`arguments_omitted: true`). */
  maxArgumentBytes: number;
  /** Request header (lower case) → context path, e.g. `x-device-trust` → `device.trust`. */
  contextHeaders: Record<string, string>;
}

export const defaultAuthSettings: AuthSettings = {
  issuers: [],
  tokenCacheEntries: 10000,
  callers: undefined,
  ops: { open: true, apiKeySha256: [], metricsOpen: true },
  tls: undefined,
  servers: [],
  forwardAuth: {
    trustedProxies: [],
    batch: "reject",
    maxArgumentBytes: 4096,
    contextHeaders: {},
  },
  warnings: [],
};

const sha256Hex = { type: "string", pattern: "^[0-9a-fA-F]{64}$" } as const;
const text = { type: "string", minLength: 1, maxLength: 2048 } as const;
const texts = { type: "array", items: text } as const;
const serverName = { pattern: serverNamePattern } as const;
const serverEntry = {
  type: "object",
  additionalProperties: false,
  required: ["resource"],
  properties: {
    resource: text,
    resource_metadata: text,
    enforces_mcp_headers: { type: "boolean" },
    proxy: { enum: knownProxies },
  },
} as const;
const serversSchema = {
  type: "object",
  propertyNames: serverName,
  additionalProperties: serverEntry,
} as const;

const fileSchema = {
  type: "object",
  additionalProperties: false,
  properties: {
    issuers: {
      type: "array",
      items: {
        type: "object",
        additionalProperties: false,
        required: ["issuer"],
        properties: {
          issuer: text,
          jwks_uri: text,
          jwks_file: text,
          public_key_files: { ...texts, minItems: 1 },
          audiences: { ...texts, minItems: 1 },
          algorithms: { type: "array", minItems: 1, items: { enum: asymmetricAlgorithms } },
          required_typ: text,
          clock_tolerance_s: { type: "integer", minimum: 0, maximum: 300 },
          max_token_bytes: { type: "integer", minimum: 256, maximum: 65536 },
          jwks_timeout_ms: { type: "integer", minimum: 100, maximum: 30000 },
          jwks_cooldown_s: { type: "integer", minimum: 1, maximum: 3600 },
          jwks_refresh_s: { type: "integer", minimum: 10, maximum: 86400 },
          subject_type: {
            type: "object",
            additionalProperties: false,
            properties: { claim: text, client_credentials: text, default: text },
          },
        },
      },
    },
    token_cache: {
      type: "object",
      additionalProperties: false,
      properties: { max_entries: { type: "integer", minimum: 0, maximum: 1000000 } },
    },
    callers: {
      type: "array",
      items: {
        type: "object",
        additionalProperties: false,
        required: ["name"],
        properties: {
          name: text,
          api_key_sha256: { type: "array", items: sha256Hex },
          mtls_subjects: texts,
          permissions: { type: "array", items: { enum: [...apiPermissions, "ops"] } },
          assert_subject: { type: "boolean" },
        },
      },
    },
    ops: {
      type: "object",
      additionalProperties: false,
      properties: {
        open: { type: "boolean" },
        api_key_sha256: { type: "array", items: sha256Hex },
        metrics_open: { type: "boolean" },
      },
    },
    forward_auth: {
      type: "object",
      additionalProperties: false,
      properties: {
        trusted_proxies: texts,
        batch: { enum: ["reject", "authorize_each"] },
        mcp_headers_without_body: { enum: ["ignore", "trust"] },
        max_argument_bytes: { type: "integer", minimum: 0, maximum: 1048576 },
        context_headers: {
          type: "object",
          propertyNames: { pattern: "^[A-Za-z0-9-]+$" },
          additionalProperties: {
            type: "string",
            pattern: "^[A-Za-z_][A-Za-z0-9_]*(\\.[A-Za-z_][A-Za-z0-9_]*)*$",
          },
        },
        // Deprecated: the registry moved to the top-level `servers`.
        servers: serversSchema,
      },
    },
    servers: serversSchema,
    tls: {
      type: "object",
      additionalProperties: false,
      required: ["cert_file", "key_file"],
      properties: { cert_file: text, key_file: text, client_ca_file: text },
    },
  },
} as const;

interface RawIssuer {
  issuer: string;
  jwks_uri?: string;
  jwks_file?: string;
  public_key_files?: string[];
  audiences?: string[];
  algorithms?: string[];
  required_typ?: string;
  clock_tolerance_s?: number;
  max_token_bytes?: number;
  jwks_timeout_ms?: number;
  jwks_cooldown_s?: number;
  jwks_refresh_s?: number;
  subject_type?: { claim?: string; client_credentials?: string; default?: string };
}

interface RawFile {
  issuers?: RawIssuer[];
  token_cache?: { max_entries?: number };
  callers?: {
    name: string;
    api_key_sha256?: string[];
    mtls_subjects?: string[];
    permissions?: ApiPermission[];
    assert_subject?: boolean;
  }[];
  ops?: { open?: boolean; api_key_sha256?: string[]; metrics_open?: boolean };
  tls?: { cert_file: string; key_file: string; client_ca_file?: string };
  servers?: Record<string, RawServer>;
  forward_auth?: {
    trusted_proxies?: string[];
    batch?: "reject" | "authorize_each";
    mcp_headers_without_body?: "ignore" | "trust";
    max_argument_bytes?: number;
    context_headers?: Record<string, string>;
    servers?: Record<string, RawServer>;
  };
}

interface RawServer {
  resource: string;
  resource_metadata?: string;
  enforces_mcp_headers?: boolean;
  proxy?: ProxyKind;
}

const validateFile = new Ajv({ allErrors: true, strict: true }).compile<RawFile>(fileSchema);

/**
 * Reads and validates the PDP_CONFIG file (YAML or JSON). Returns the settings
 * and every problem found, each naming its key, e.g. `issuers[0].audiences`.
 */
export function readAuthSettings(path: string): { settings: AuthSettings; problems: string[] } {
  let raw: unknown;
  try {
    raw = parseYaml(readFileSync(path, "utf8"));
  } catch (error) {
    const message = error instanceof Error ? (error.message.split("\n")[0] ?? "") : String(error);
    return { settings: defaultAuthSettings, problems: [`PDP_CONFIG ${path}: ${message}`] };
  }
  if (!validateFile(raw)) {
    const problems = (validateFile.errors ?? []).map((e) => `PDP_CONFIG ${path}: ${describe(e)}`);
    return { settings: defaultAuthSettings, problems };
  }
  const problems: string[] = [];
  const issuers = (raw.issuers ?? []).map((issuer, index) =>
    toIssuer(issuer, `issuers[${index}]`, problems),
  );
  const names = new Set<string>();
  const callers = raw.callers?.map((caller, index) => {
    if (names.has(caller.name))
      problems.push(`callers[${index}].name: ${caller.name} is used twice`);
    names.add(caller.name);
    const apiKeySha256 = caller.api_key_sha256 ?? [];
    const mtlsSubjects = caller.mtls_subjects ?? [];
    if (apiKeySha256.length === 0 && mtlsSubjects.length === 0) {
      problems.push(`callers[${index}]: needs api_key_sha256 or mtls_subjects`);
    }
    return {
      name: caller.name,
      apiKeySha256,
      mtlsSubjects,
      permissions: caller.permissions ?? [...apiPermissions],
      assertSubject: caller.assert_subject ?? false,
    };
  });
  const tls = raw.tls && {
    certFile: raw.tls.cert_file,
    keyFile: raw.tls.key_file,
    clientCaFile: raw.tls.client_ca_file,
  };
  if (callers?.some((c) => c.mtlsSubjects.length > 0) === true && tls?.clientCaFile === undefined) {
    problems.push("tls.client_ca_file: callers identified by mtls_subjects need an mTLS listener");
  }
  const opsKeys = raw.ops?.api_key_sha256 ?? [];
  const opsOpen = raw.ops?.open ?? opsKeys.length === 0;
  if (opsOpen && opsKeys.length > 0) {
    problems.push("ops: open is true, so api_key_sha256 would be ignored; drop one of them");
  }
  if (
    !opsOpen &&
    opsKeys.length === 0 &&
    callers?.some((c) => c.permissions.includes("ops")) !== true
  ) {
    problems.push(
      "ops: closed, but no ops key and no caller with the ops permission: probes could never pass",
    );
  }
  const metricsOpen = raw.ops?.metrics_open ?? (callers === undefined && opsOpen);
  if (
    raw.ops?.metrics_open === false &&
    opsKeys.length === 0 &&
    callers?.some((c) => c.permissions.includes("ops")) !== true
  ) {
    problems.push(
      "ops.metrics_open: false, but no ops key and no caller with the ops permission: /metrics could never be scraped",
    );
  }
  // One credential must name one caller: otherwise the file's order decides who asks.
  const owners = new Map<string, string>();
  const claim = (credential: string, owner: string, key: string): void => {
    const previous = owners.get(credential);
    if (previous !== undefined && previous !== owner) {
      problems.push(`${key}: also names ${previous}; one credential must identify one caller`);
    }
    owners.set(credential, owner);
  };
  raw.callers?.forEach((caller, index) => {
    caller.api_key_sha256?.forEach((digest, k) => {
      claim(
        `key:${digest.toLowerCase()}`,
        `callers[${index}]`,
        `callers[${index}].api_key_sha256[${k}]`,
      );
    });
    caller.mtls_subjects?.forEach((name, k) => {
      claim(`tls:${name}`, `callers[${index}]`, `callers[${index}].mtls_subjects[${k}]`);
    });
  });
  opsKeys.forEach((digest, k) => {
    claim(`key:${digest.toLowerCase()}`, "ops", `ops.api_key_sha256[${k}]`);
  });
  const forwardAuth = toForwardAuth(raw.forward_auth ?? {}, problems);
  const warnings: string[] = [];
  const servers = toServers(raw, problems, warnings);
  checkIssuerAudiences(issuers, servers, problems, warnings);
  return {
    settings: {
      issuers,
      tokenCacheEntries: raw.token_cache?.max_entries ?? defaultAuthSettings.tokenCacheEntries,
      callers,
      ops: { open: opsOpen, apiKeySha256: raw.ops?.api_key_sha256 ?? [], metricsOpen },
      tls,
      servers,
      forwardAuth,
      warnings: warnings.map((w) => `PDP_CONFIG ${path}: ${w}`),
    },
    problems: problems.map((p) => `PDP_CONFIG ${path}: ${p}`),
  };
}

function toForwardAuth(
  raw: NonNullable<RawFile["forward_auth"]>,
  problems: string[],
): ForwardAuthSettings {
  const defaults = defaultAuthSettings.forwardAuth;
  const trustedProxies = raw.trusted_proxies ?? defaults.trustedProxies;
  for (const [index, cidr] of trustedProxies.entries()) {
    if (parseCidr(cidr) === undefined) {
      problems.push(
        `forward_auth.trusted_proxies[${index}]: ${cidr} is not a CIDR (e.g. 10.0.0.0/8, ::1/128)`,
      );
    }
  }
  if (raw.mcp_headers_without_body === "trust") {
    problems.push(
      "forward_auth.mcp_headers_without_body: trust believed every client's Mcp-Method/Mcp-Name; mark the servers that enforce header/body agreement with servers.<name>.enforces_mcp_headers: true instead",
    );
  }
  const contextHeaders: Record<string, string> = {};
  for (const [header, path] of Object.entries(raw.context_headers ?? {})) {
    contextHeaders[header.toLowerCase()] = path;
  }
  return {
    trustedProxies,
    batch: raw.batch ?? defaults.batch,
    maxArgumentBytes: raw.max_argument_bytes ?? defaults.maxArgumentBytes,
    contextHeaders,
  };
}

/** The `servers` registry, also read from the deprecated `forward_auth.servers`. */
function toServers(raw: RawFile, problems: string[], warnings: string[]): ServerSettings[] {
  const legacy = raw.forward_auth?.servers ?? {};
  if (Object.keys(legacy).length > 0) {
    warnings.push(
      "forward_auth.servers is deprecated: move it to the top-level servers (every API uses it)",
    );
  }
  if (raw.forward_auth?.mcp_headers_without_body === "ignore") {
    warnings.push(
      "forward_auth.mcp_headers_without_body is deprecated: ignore is the default; servers.<name>.enforces_mcp_headers marks servers whose headers may be believed",
    );
  }
  const entries: [string, RawServer, string][] = [
    ...Object.entries(raw.servers ?? {}).map(([name, server]): [string, RawServer, string] => [
      name,
      server,
      `servers.${name}`,
    ]),
    ...Object.entries(legacy).map(([name, server]): [string, RawServer, string] => [
      name,
      server,
      `forward_auth.servers.${name}`,
    ]),
  ];
  const servers: ServerSettings[] = [];
  const byName = new Map<string, string>();
  const byResource = new Map<string, string>();
  for (const [name, server, key] of entries) {
    const earlier = byName.get(name);
    if (earlier !== undefined) {
      problems.push(`${key}: ${name} is also defined at ${earlier}`);
      continue;
    }
    byName.set(name, key);
    const resource = canonicalResource(server.resource);
    if (resource === undefined) {
      problems.push(
        `${key}.resource: ${server.resource} is not an absolute http(s) URI without credentials or fragment`,
      );
      continue;
    }
    if (resource !== server.resource) {
      // Tokens are compared exactly: a second spelling would refuse (or, elsewhere, accept) tokens unexpectedly.
      problems.push(`${key}.resource: write the canonical spelling ${resource}`);
    }
    const sameResource = byResource.get(resource);
    if (sameResource !== undefined) {
      problems.push(`${key}.resource: ${resource} is also the resource of ${sameResource}`);
    }
    byResource.set(resource, key);
    if (
      server.resource_metadata !== undefined &&
      canonicalResource(server.resource_metadata) === undefined
    ) {
      problems.push(
        `${key}.resource_metadata: ${server.resource_metadata} is not an absolute http(s) URL`,
      );
    }
    const enforcesMcpHeaders = server.enforces_mcp_headers ?? false;
    if (enforcesMcpHeaders) {
      warnings.push(
        `${key}.enforces_mcp_headers: true — Mcp-Method/Mcp-Name from clients are believed for ${name} when no body is visible; this is safe only if that MCP server refuses requests whose headers and body disagree (SEP-2243)`,
      );
    }
    servers.push({
      name,
      resource,
      resourceMetadata: server.resource_metadata ?? metadataUrlFor(resource),
      enforcesMcpHeaders,
      proxy: server.proxy,
    });
  }
  return servers;
}

/** An issuer's `audiences` restrict it to registered servers; anything else can never verify. */
function checkIssuerAudiences(
  issuers: IssuerSettings[],
  servers: ServerSettings[],
  problems: string[],
  warnings: string[],
): void {
  const resources = new Set(servers.map((server) => server.resource));
  if (issuers.length > 0 && servers.length === 0) {
    warnings.push(
      "issuers are configured but servers is empty: every token will be refused (server_unknown); register the protected MCP servers under servers",
    );
  }
  issuers.forEach((issuer, index) => {
    issuer.audiences?.forEach((audience, k) => {
      const canonical = canonicalResource(audience);
      if (canonical !== undefined && canonical !== audience) {
        problems.push(
          `issuers[${index}].audiences[${k}]: write the canonical spelling ${canonical}`,
        );
      } else if (!resources.has(audience)) {
        warnings.push(
          `issuers[${index}].audiences[${k}]: ${audience} is not the resource of any server in servers; tokens for it are refused`,
        );
      }
    });
  });
}

function toIssuer(raw: RawIssuer, key: string, problems: string[]): IssuerSettings {
  const sources = [raw.jwks_uri, raw.jwks_file, raw.public_key_files].filter(
    (s) => s !== undefined,
  );
  if (sources.length !== 1) {
    problems.push(`${key}: set exactly one of jwks_uri, jwks_file, public_key_files`);
  }
  if (raw.jwks_uri !== undefined) {
    try {
      const url = new URL(raw.jwks_uri);
      const loopback = ["127.0.0.1", "[::1]", "localhost"].includes(url.hostname);
      if (url.protocol !== "https:" && !(url.protocol === "http:" && loopback)) {
        problems.push(`${key}.jwks_uri: must be https (plain http only on loopback)`);
      }
    } catch {
      problems.push(`${key}.jwks_uri: ${raw.jwks_uri} is not a URL`);
    }
  }
  const keys =
    raw.jwks_uri !== undefined
      ? { jwksUri: raw.jwks_uri }
      : raw.jwks_file !== undefined
        ? { jwksFile: raw.jwks_file }
        : { publicKeyFiles: raw.public_key_files ?? [] };
  return {
    issuer: raw.issuer,
    keys,
    audiences: raw.audiences,
    algorithms: raw.algorithms ?? [...asymmetricAlgorithms],
    requiredTyp: raw.required_typ,
    clockToleranceS: raw.clock_tolerance_s ?? 30,
    maxTokenBytes: raw.max_token_bytes ?? 8192,
    jwksTimeoutMs: raw.jwks_timeout_ms ?? 2000,
    jwksCooldownS: raw.jwks_cooldown_s ?? 30,
    jwksRefreshS: raw.jwks_refresh_s ?? 600,
    subjectType: {
      claim: raw.subject_type?.claim,
      clientCredentials: raw.subject_type?.client_credentials ?? "service",
      default: raw.subject_type?.default ?? "user",
    },
  };
}

/** `issuers[0].audiences must NOT have fewer than 1 items`, from an ajv error. */
function describe(error: ErrorObject): string {
  const path = error.instancePath
    .split("/")
    .slice(1)
    .map((segment) => (/^\d+$/.test(segment) ? `[${segment}]` : `.${segment}`))
    .join("")
    .replace(/^\./, "");
  if (error.keyword === "required") {
    const missing = (error.params as { missingProperty: string }).missingProperty;
    return `${path ? `${path}.` : ""}${missing}: is required`;
  }
  if (error.keyword === "additionalProperties") {
    const extra = (error.params as { additionalProperty: string }).additionalProperty;
    return `${path ? `${path}.` : ""}${extra}: is not a known key`;
  }
  if (error.keyword === "enum") {
    const allowed = (error.params as { allowedValues: unknown[] }).allowedValues.join(", ");
    return `${path || "(top level)"}: must be one of ${allowed}`;
  }
  return `${path || "(top level)"}: ${error.message ?? "is invalid"}`;
}
