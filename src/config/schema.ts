/**
 * The one schema of the PDP's configuration: every section of the PDP_CONFIG
 * file (YAML or JSON), its types, limits, defaults and descriptions. The
 * environment variables override keys of this same schema (environment.ts),
 * the README's configuration reference is rendered from it (reference.ts),
 * and the TypeScript types are derived from it: there is no second copy.
 *
 * Checks of one value (a URL's scheme, a CIDR, a referenced file being
 * readable) live here beside the key; checks across keys are in rules.ts.
 */
import { accessSync, constants, statSync } from "node:fs";
import { z } from "zod";
import { canonicalResource, serverNamePattern } from "../protocol/resource-uri.ts";
import { parseCidr } from "../net/client-address.ts";

/**
 * The decision API groups a caller may be allowed to use (its default when
 * none are listed). `opa_data` (the OPA Data API) also needs `assertSubject`:
 * its input reaches the policy unverified.
 */
export const apiPermissions = ["authzen", "forward_auth", "opa_data"] as const;
/** A decision API group, or "ops": /health, /ready, /metrics when they are not open. */
export type ApiPermission = (typeof apiPermissions)[number] | "ops";

/** The proxies whose own request headers the PDP can interpret. */
export const knownProxies = ["envoy", "nginx", "traefik", "caddy"] as const;
export type ProxyKind = (typeof knownProxies)[number];

/** The default of `decision_log.max_record_bytes`: a record past it has its largest values cut. */
export const defaultMaxRecordBytes = 16 * 1024;

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

/**
 * Signature algorithms a bundle may be signed with: those `opa build
 * --signing-alg` writes, without `none`. HS* use a shared secret, as OPA does.
 */
export const bundleSignatureAlgorithms = [
  ...asymmetricAlgorithms,
  "HS256",
  "HS384",
  "HS512",
] as const;

export const defaultEntrypoint = "mcp/authz/decision";
export const defaultConfigEntrypoint = "mcp/authz/config_errors";
export const defaultPort = 8180;
export const logLevels = ["error", "warn", "info", "debug"] as const;

/** Tool arguments can hold anything a user typed: never logged unless the operator asks. */
export const defaultErasePointers = ["/input/resource/properties/arguments"];

const mib = 1024 * 1024;

/** A whole number in a range; every way of missing it (text, fraction, out of range) reads the same. */
function wholeNumber(min: number, max: number) {
  const error = `must be a whole number from ${min} to ${max}`;
  return z.number({ error }).int({ error }).min(min, { error }).max(max, { error });
}

function oneOf<const T extends readonly [string, ...string[]]>(values: T) {
  return z.enum(values, { error: `must be one of ${values.join(", ")}` });
}

const flag = z.boolean({ error: "must be true or false" });
const text = z
  .string({ error: "must be a text" })
  .min(1, { error: "must not be empty" })
  .max(2048, { error: "must be at most 2048 characters" });
const texts = z.array(text, { error: "must be a list" });
const port = wholeNumber(0, 65535);
const sha256Hex = z
  .string({ error: "must be a text" })
  .regex(/^[0-9a-fA-F]{64}$/, { error: "must be 64 hex digits (a SHA-256 digest)" });

/**
 * A path the PDP reads at startup: it must exist and be readable now, so a
 * wrong path is reported with every other problem instead of one per start.
 * What the file holds is checked where it is read (keys, certificates, data).
 */
function readablePath(kind: "file" | "file or directory") {
  return text.superRefine((path, context) => {
    const problem = unreadable(path, kind);
    if (problem !== undefined) context.addIssue({ code: "custom", message: problem });
  });
}

function unreadable(path: string, kind: "file" | "file or directory"): string | undefined {
  try {
    const stat = statSync(path);
    if (stat.isDirectory()) {
      if (kind === "file") return `${path} is a directory, not a file`;
      accessSync(path, constants.R_OK | constants.X_OK);
    } else {
      if (!stat.isFile()) return `${path} is not a regular file`;
      accessSync(path, constants.R_OK);
    }
    return undefined;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? "error";
    const why = code === "ENOENT" ? "does not exist" : code === "EACCES" ? "is not readable" : code;
    return `${path} ${why} (${code})`;
  }
}

/** An absolute http(s) URL. */
const httpUrl = text.refine(
  (value) => {
    try {
      const url = new URL(value);
      return url.protocol === "http:" || url.protocol === "https:";
    } catch {
      return false;
    }
  },
  { error: "must be an absolute http(s) URL" },
);

/** "stdout", "stderr", or a file path appended to (opened at startup). */
const logDestination = text;

const server = z
  .strictObject({
    host: text.default("127.0.0.1").describe("listen address"),
    port: port.default(defaultPort).describe("listen port"),
    public_url: httpUrl
      .optional()
      .describe("base URL published by discovery")
      .meta({ defaultText: "`http://HOST:PORT` (`https` with `tls`)" }),
    max_body_bytes: wholeNumber(1024, 64 * mib)
      .default(mib)
      .describe("largest request body"),
    headers_timeout_ms: wholeNumber(100, 600000)
      .default(10000)
      .describe(
        "time to receive a request's headers; then `408 request_timeout` and the connection closes",
      ),
    request_timeout_ms: wholeNumber(100, 600000)
      .default(30000)
      .describe(
        "time to receive a whole request, body included (at least the headers timeout); then `408`",
      ),
    keep_alive_timeout_ms: wholeNumber(100, 600000)
      .default(5000)
      .describe(
        "how long an idle keep-alive connection stays open (announced in `Keep-Alive`; node closes it ~1 s later)",
      ),
    max_connections: wholeNumber(1, 1000000)
      .default(4096)
      .describe(
        "open connections per listener (per worker on the main port); every connection beyond is closed at once",
      ),
    workers: wholeNumber(1, 256)
      .optional()
      .describe(
        "threads serving the main port, each with its own policy instance ([Workers](#workers)); 1 serves from the main thread alone",
      )
      .meta({ defaultText: "the number of available cores" }),
    max_requests_per_connection: wholeNumber(0, 1000000)
      .default(1000)
      .describe(
        "requests one keep-alive connection may carry before the PDP answers `Connection: close`, so that a client holding few connections is spread over the workers again; 0: no limit",
      ),
    probe_port: port
      .optional()
      .describe(
        "plain-HTTP port on the host serving only `/health` and `/ready`, without credentials ([Probes](#probes)); the image sets `8181`",
      ),
    metrics_port: port
      .optional()
      .describe("serve `/metrics` on this port (same host) instead of the main listener"),
    drain_delay_ms: wholeNumber(0, 600000)
      .default(5000)
      .describe(
        "after SIGTERM, how long `/ready` answers 503 while all else is served ([Signals](#signals-and-shutdown))",
      ),
    shutdown_timeout_ms: wholeNumber(0, 600000)
      .default(10000)
      .describe("how long SIGTERM/SIGINT wait for in-flight requests"),
    allow_unauthenticated_callers: flag
      .default(false)
      .describe("allow a non-loopback host without `callers` (logged loudly)"),
  })
  .describe("the listeners");

const policy = z
  .strictObject({
    bundle: readablePath("file or directory")
      .optional()
      .describe("OPA bundle: `.tar.gz` or directory")
      .meta({ defaultText: "the embedded `bundle/bundle.tar.gz`" }),
    data: readablePath("file")
      .optional()
      .describe("operator data file (`.json`, `.yaml`, `.yml`) merged over the bundle's data"),
    entrypoint: text
      .regex(/^[A-Za-z0-9_]+(\/[A-Za-z0-9_]+)*$/, {
        error: `must be a slash-separated path such as ${defaultEntrypoint}`,
      })
      .default(defaultEntrypoint)
      .describe("the decision entrypoint"),
    config_entrypoint: z
      .string({ error: "must be a text" })
      .default(defaultConfigEntrypoint)
      .describe(
        "entrypoint listing data problems; checked when the bundle has it (required when set to anything else; empty disables)",
      ),
    watch: flag
      .default(true)
      .describe(
        "reload `bundle` and `data` when they change on disk (their directories are watched, debounced 250 ms; [Live policy](#live-policy))",
      ),
    shadow: z
      .strictObject({
        bundle: readablePath("file or directory")
          .optional()
          .describe("the candidate bundle")
          .meta({ defaultText: "the active `policy.bundle`" }),
        data: readablePath("file")
          .optional()
          .describe("the candidate's operator data (none when unset)"),
        sample_rate: z
          .number({ error: "must be a number from 0 to 1" })
          .min(0, { error: "must be a number from 0 to 1" })
          .max(1, { error: "must be a number from 0 to 1" })
          .default(0.01)
          .describe("share of decisions also evaluated on the candidate"),
      })
      .optional()
      .describe(
        "a candidate policy evaluated beside the active one, never changing an answer ([Shadow evaluation](#shadow-evaluation))",
      ),
    signing: z
      .strictObject({
        keys: z
          .array(
            z.strictObject({
              id: text.describe("the key id a bundle's JWT names (`kid`), or `keyid` selects"),
              algorithm: oneOf(bundleSignatureAlgorithms).describe(
                "the only algorithm accepted with this key",
              ),
              key_file: readablePath("file").describe(
                "PEM public key; for HS* a file holding the shared secret",
              ),
            }),
            { error: "must be a list" },
          )
          .min(1, { error: "must list at least one key" })
          .describe("verification keys"),
        keyid: text
          .optional()
          .describe("verify with this key whatever the JWT's `kid` says (OPA's `keyid`)"),
        scope: text.optional().describe("the `scope` claim every bundle must carry"),
        exclude_files: texts
          .default([])
          .describe("bundle files left out of the signature check (globs, as OPA's)"),
      })
      .optional()
      .describe(
        "with keys, every bundle (`bundle`, reloads, the service's) must be signed and verified; an unsigned one is refused `bundle_unsigned` ([Policy from a bundle service](#policy-from-a-bundle-service))",
      ),
    service: z
      .strictObject({
        url: httpUrl.describe("the bundle service (OPA's `services[].url`)"),
        resource: text.describe("the bundle's path below `url`, e.g. `bundles/authz.tar.gz`"),
        min_delay_s: wholeNumber(1, 86400).default(60).describe("shortest delay between two polls"),
        max_delay_s: wholeNumber(1, 86400)
          .default(120)
          .describe("longest delay between two polls (and the backoff's cap)"),
        long_polling_timeout_s: wholeNumber(1, 3600)
          .optional()
          .describe(
            "ask the server to hold each request this long (`Prefer: wait=N`; off when unset)",
          ),
        timeout_s: wholeNumber(1, 600)
          .default(10)
          .describe("bounds each answer, body included, and the startup poll"),
        max_bytes: wholeNumber(1, 1024 * mib)
          .default(64 * mib)
          .describe("a larger compressed bundle is aborted while it streams"),
        credentials: z
          .strictObject({
            bearer_token_file: readablePath("file")
              .optional()
              .describe("file holding the bearer token (read at each request)"),
            bearer_token_env: text
              .optional()
              .describe("environment variable holding the bearer token"),
            client_cert_file: readablePath("file")
              .optional()
              .describe("PEM client certificate for mTLS"),
            client_key_file: readablePath("file").optional().describe("its PEM key"),
            ca_file: readablePath("file")
              .optional()
              .describe("PEM CA certificates trusted for the service instead of the system's"),
          })
          .prefault({})
          .describe("how the PDP authenticates to the service"),
        persist_dir: text
          .optional()
          .describe("keep the last activated bundle here, to start from when the service is down"),
        persisted_max_age_s: wholeNumber(1, 31536000)
          .optional()
          .describe("a persisted bundle older than this is not started from (any age when unset)"),
      })
      .optional()
      .describe(
        "poll an OPA bundle service for the bundle instead of reading `bundle` ([Policy from a bundle service](#policy-from-a-bundle-service))",
      ),
    max_staleness_s: wholeNumber(1, 31536000)
      .optional()
      .describe(
        "`/ready` answers 503 `policy_stale` when the active policy's source has not been checked successfully for longer (off by default; [Live policy](#live-policy))",
      ),
  })
  .describe("the policy bundle and the operator data");

const limits = z
  .strictObject({
    max_depth: wholeNumber(4, 512).default(32).describe("deepest JSON nesting"),
    max_evaluations: wholeNumber(1, 10000).default(256).describe("most items in one batch"),
    max_batch_input_bytes: wholeNumber(64 * 1024, 1024 * mib)
      .default(8 * mib)
      .describe(
        "most policy input one `/access/v1/evaluations` may expand to: the body plus every inherited part once per item that inherits it; more is `400 batch_too_large`; at least `server.max_body_bytes`",
      ),
  })
  .describe("what one request may cost");

const log = z
  .strictObject({
    level: oneOf(logLevels).default("info").describe("diagnostics level"),
    destination: logDestination
      .refine((value) => value !== "off", {
        error: "the diagnostics log cannot be switched off; use stdout, stderr or a file path",
      })
      .default("stdout")
      .describe("diagnostics: `stdout`, `stderr` or a file path"),
  })
  .describe("the diagnostics log");

const decisionLog = z
  .strictObject({
    destination: logDestination
      .default("stdout")
      .describe("decision records: `stdout`, `stderr`, `off` or a file path"),
    context: z
      .array(text, { error: "must be a list" })
      .default(["ip", "device", "location", "session"])
      .describe("`context` keys copied into decision records (empty: none)"),
    input: flag.default(false).describe("add the (masked) policy input to decision records"),
    erase: z
      .array(
        text.refine((pointer) => pointer.startsWith("/"), {
          error: (issue) => `${String(issue.input)} is not a JSON pointer (/a/b)`,
        }),
        { error: "must be a list" },
      )
      .default([])
      .describe(
        "JSON pointers removed from decision records, besides `/input/resource/properties/arguments` (always)",
      ),
    max_record_bytes: wholeNumber(1024, 64 * mib)
      .default(defaultMaxRecordBytes)
      .describe("largest decision record in bytes of JSON; larger values become `[TRUNCATED]`"),
  })
  .describe("one record per decision");

const metrics = z
  .strictObject({
    tool_labels: texts
      .default([])
      .describe("`<server>/<tool>` names allowed as the `tool` label; every other tool is `other`"),
    client_labels: texts
      .default([])
      .describe("OAuth client ids allowed as the `client` label; every other client is `other`"),
  })
  .describe("Prometheus label allow-lists");

/** A JWKS URL must be https: plain http is tolerated only on this machine. */
const jwksUri = text.superRefine((value, context) => {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    context.addIssue({ code: "custom", message: `${value} is not a URL` });
    return;
  }
  const loopback = ["127.0.0.1", "[::1]", "localhost"].includes(url.hostname);
  if (url.protocol !== "https:" && !(url.protocol === "http:" && loopback)) {
    context.addIssue({ code: "custom", message: "must be https (plain http only on loopback)" });
  }
});

const issuer = z
  .strictObject({
    issuer: text.describe("exact `iss`"),
    jwks_uri: jwksUri.optional().describe("remote JWKS (https, or http on loopback)"),
    jwks_file: readablePath("file").optional().describe("a local JWKS file"),
    public_key_files: z
      .array(readablePath("file"), { error: "must be a list" })
      .min(1, { error: "must not be empty" })
      .optional()
      .describe("PEM public keys (one per algorithm)"),
    audiences: z
      .array(text, { error: "must be a list" })
      .min(1, { error: "must not be empty (leave it out to mean: every server)" })
      .optional()
      .describe(
        "restricts the issuer to these servers (their `resource`s); tokens are always checked per server",
      )
      .meta({ defaultText: "every server in `servers`" }),
    algorithms: z
      .array(oneOf(asymmetricAlgorithms), { error: "must be a list" })
      .min(1, { error: "must not be empty" })
      .default([...asymmetricAlgorithms])
      .describe("subset of RS256/384/512, PS256/384/512, ES256/384/512, EdDSA")
      .meta({ defaultText: "all asymmetric" }),
    required_typ: text.optional().describe("e.g. `at+jwt` (RFC 9068)"),
    clock_tolerance_s: wholeNumber(0, 300).default(30).describe("leeway for `exp`, `nbf`, `iat`"),
    max_token_bytes: wholeNumber(256, 65536).default(8192).describe("longest accepted token"),
    jwks_timeout_ms: wholeNumber(100, 30000).default(2000).describe("JWKS fetch timeout"),
    jwks_cooldown_s: wholeNumber(1, 3600)
      .default(30)
      .describe(
        "least time between a fetch (failed or not) and a refetch caused by an unknown `kid`",
      ),
    jwks_refresh_s: wholeNumber(10, 86400).default(600).describe("background refetch period"),
    subject_type: z
      .strictObject({
        claim: text.optional().describe("a claim that gives `subject.type`"),
        client_credentials: text
          .default("service")
          .describe("`subject.type` when `sub` is the `client_id` (a client acting for itself)"),
        default: text.default("user").describe("`subject.type` otherwise"),
      })
      .prefault({})
      .describe("how `subject.type` is chosen"),
  })
  .superRefine((value, context) => {
    const sources = [value.jwks_uri, value.jwks_file, value.public_key_files].filter(
      (source) => source !== undefined,
    );
    if (sources.length !== 1) {
      context.addIssue({
        code: "custom",
        message: "set exactly one of jwks_uri, jwks_file, public_key_files",
      });
    }
  });

const caller = z.strictObject({
  name: text.describe("the caller's name (logged, and in decision records)"),
  api_key_sha256: z
    .array(sha256Hex, { error: "must be a list" })
    .default([])
    .describe("SHA-256 digests (hex) of the caller's `X-Api-Key` values"),
  mtls_subjects: texts
    .default([])
    .describe("client certificate names (subject CN or DNS SAN) that identify the caller"),
  permissions: z
    .array(oneOf([...apiPermissions, "ops"]), { error: "must be a list" })
    .default([...apiPermissions])
    .describe("`authzen`, `forward_auth`, `opa_data`, `ops`")
    .meta({ defaultText: "`authzen`, `forward_auth`, `opa_data`" }),
  assert_subject: flag
    .default(false)
    .describe("may send verified subject properties instead of a token (a trusted gateway)"),
});

const serverEntry = z.strictObject({
  resource: text
    .superRefine((value, context) => {
      const canonical = canonicalResource(value);
      if (canonical === undefined) {
        context.addIssue({
          code: "custom",
          message: `${value} is not an absolute http(s) URI without credentials or fragment`,
        });
      } else if (canonical !== value) {
        // Tokens are compared exactly: a second spelling would refuse (or, elsewhere, accept) tokens unexpectedly.
        context.addIssue({ code: "custom", message: `write the canonical spelling ${canonical}` });
      }
    })
    .describe("canonical resource URI (RFC 8707): a token's `aud` must contain exactly this"),
  resource_metadata: text
    .refine((value) => canonicalResource(value) !== undefined, {
      error: "must be an absolute http(s) URL",
    })
    .optional()
    .describe("RFC 9728 metadata URL announced in `WWW-Authenticate`")
    .meta({ defaultText: "derived from `resource` (RFC 9728 §3)" }),
  enforces_mcp_headers: flag
    .default(false)
    .describe(
      "the server refuses requests whose `Mcp-Method`/`Mcp-Name` disagree with the body, so those headers may be believed without a body",
    ),
  speaks_mcp_2026_07_28: flag
    .default(false)
    .describe(
      "the server speaks MCP 2026-07-28 and so refuses a request declaring it whose `Mcp-Method`/`Mcp-Name` disagree with the body: such requests may be decided from those headers without a body",
    ),
  proxy: oneOf(knownProxies).optional().describe("the proxy in front of this server"),
});

const servers = z
  .record(
    z.string().regex(new RegExp(serverNamePattern), {
      error: `must match ${serverNamePattern}`,
    }),
    serverEntry,
    { error: "must be a mapping of server names" },
  )
  .default({});

const tls = z
  .strictObject({
    cert_file: readablePath("file").describe("the listener's certificate (PEM)"),
    key_file: readablePath("file").describe("its private key (PEM)"),
    client_ca_file: readablePath("file")
      .optional()
      .describe("require client certificates signed by this CA (mTLS)"),
  })
  .describe("serve HTTPS");

const forwardAuth = z
  .strictObject({
    trusted_proxies: z
      .array(
        text.refine((cidr) => parseCidr(cidr) !== undefined, {
          error: (issue) => `${String(issue.input)} is not a CIDR (e.g. 10.0.0.0/8, ::1/128)`,
        }),
        { error: "must be a list" },
      )
      .default([])
      .describe("CIDRs of proxies whose `X-Forwarded-For` and context headers are believed"),
    batch: oneOf(["reject", "authorize_each"])
      .default("reject")
      .describe("a JSON-RPC batch array: refused, or every message authorized"),
    mcp_headers_without_body: oneOf(["ignore", "trust"])
      .refine((value) => value !== "trust", {
        error:
          "trust believed every client's Mcp-Method/Mcp-Name; mark the servers that enforce header/body agreement with servers.<name>.enforces_mcp_headers: true instead",
      })
      .optional()
      .describe("deprecated: `ignore` is the default, `trust` is refused"),
    max_argument_bytes: wholeNumber(0, mib)
      .default(4096)
      .describe("larger tool-call arguments are not passed to the policy"),
    context_headers: z
      .record(
        z.string().regex(/^[A-Za-z0-9-]+$/, { error: "must be a header name" }),
        z
          .string({ error: "must be a text" })
          .regex(/^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/, {
            error: "must be a dotted context path such as device.trust",
          }),
        { error: "must be a mapping" },
      )
      .default({})
      .describe("request header → `context` path, e.g. `x-device-trust: device.trust`"),
    servers: servers
      .optional()
      .describe("deprecated: moved to the top-level `servers` (a warning at startup)"),
  })
  .describe("reading requests relayed by proxies");

/** The PDP_CONFIG file: every section is optional, every key has its default. */
export const configFileSchema = z.strictObject({
  server: server.prefault({}),
  policy: policy.prefault({}),
  limits: limits.prefault({}),
  log: log.prefault({}),
  decision_log: decisionLog.prefault({}),
  metrics: metrics.prefault({}),
  issuers: z
    .array(issuer, { error: "must be a list" })
    .default([])
    .describe("token issuers the PDP trusts"),
  token_cache: z
    .strictObject({
      max_entries: wholeNumber(0, 1000000)
        .default(10000)
        .describe("verified tokens, keyed by a hash, never past `exp`; 0 disables"),
    })
    .prefault({})
    .describe("the cache of verified tokens"),
  servers: servers.describe("the protected MCP servers, by name"),
  callers: z
    .array(caller, { error: "must be a list" })
    .optional()
    .describe("who may call the PDP; without it, caller authentication is off")
    .meta({ defaultText: "none: caller authentication off" }),
  ops: z
    .strictObject({
      open: flag
        .optional()
        .describe("`/health` and `/ready` without credentials")
        .meta({ defaultText: "`true` unless `api_key_sha256` is set" }),
      api_key_sha256: z
        .array(sha256Hex, { error: "must be a list" })
        .default([])
        .describe("SHA-256 digests of the ops key(s) (`X-Api-Key`)"),
      metrics_open: flag
        .optional()
        .describe("`/metrics` without credentials")
        .meta({ defaultText: "`true` unless `callers` are set or ops is closed" }),
    })
    .prefault({})
    .describe("the ops endpoints"),
  tls: tls.optional(),
  forward_auth: forwardAuth.prefault({}),
});

/** The file as written (every key optional). */
export type ConfigFileInput = z.input<typeof configFileSchema>;
/** The file once validated, defaults filled in. */
export type ConfigFile = z.output<typeof configFileSchema>;
export type ServerEntry = z.output<typeof serverEntry>;
