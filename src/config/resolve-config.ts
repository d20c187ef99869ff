/**
 * The validated file → the Config the components are built from. The Config
 * type is what this function returns: derived, never written twice.
 */
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import type { ProxyKind } from "./schema.ts";
import { defaultErasePointers, type ConfigFile } from "./schema.ts";

/** One protected MCP server, as configured. */
export interface ServerSettings {
  /** The name used in `/forward-auth/<name>`, `<name>/<tool>` and `resource.properties.server`. */
  name: string;
  /** Canonical resource URI (RFC 8707): a token's `aud` must contain exactly this. */
  resource: string;
  /** RFC 9728 protected resource metadata URL, announced in `WWW-Authenticate`. */
  resourceMetadata: string;
  /**
   * The server refuses requests whose `Mcp-Method`/`Mcp-Name` headers
   * disagree with the body (SEP-2243), so the headers may be believed when a
   * proxy forwards no body. Without that guarantee they are the client's word.
   */
  enforcesMcpHeaders: boolean;
  /**
   * The server speaks MCP 2026-07-28, which binds it to refuse a request
   * declaring that revision whose standard headers disagree with the body:
   * such a request may be decided from its headers when no body is visible.
   */
  speaksMcp20260728: boolean;
  /** The proxy in front of this server, whose own signals (Envoy's partial-body header) count. */
  proxy: ProxyKind | undefined;
}

/** The compiled default policy, shipped in the repository and the package. */
export const embeddedBundlePath = fileURLToPath(
  new URL("../../bundle/bundle.tar.gz", import.meta.url),
);

/** Where a log goes: a standard stream, a file, or nowhere. */
export type LogDestination = { stream: "stdout" | "stderr" } | { file: string } | "off";

function destination(value: string): LogDestination {
  if (value === "off") return "off";
  if (value === "stdout" || value === "stderr") return { stream: value };
  return { file: value };
}

export function resolveConfig(
  file: ConfigFile,
  servers: readonly ServerSettings[],
  warnings: readonly string[],
) {
  const { server, policy, limits, log, decision_log: decisionLog, metrics, ops } = file;
  const tls = file.tls && {
    certFile: file.tls.cert_file,
    keyFile: file.tls.key_file,
    clientCaFile: file.tls.client_ca_file,
  };
  const callers = file.callers?.map((caller) => ({
    name: caller.name,
    apiKeySha256: caller.api_key_sha256,
    mtlsSubjects: caller.mtls_subjects,
    permissions: caller.permissions,
    assertSubject: caller.assert_subject,
  }));
  const opsOpen = ops.open ?? ops.api_key_sha256.length === 0;
  const host = server.host;
  const diagnosticLog = destination(log.destination);
  return {
    /** Listen address; loopback by default. */
    host,
    port: server.port,
    /** Base URL clients reach the PDP at, published by metadata discovery. */
    publicUrl: (
      server.public_url ??
      `${tls === undefined ? "http" : "https"}://${host.includes(":") ? `[${host}]` : host}:${server.port}`
    ).replace(/\/+$/, ""),
    policy: resolvePolicy(policy),
    limits: {
      maxBodyBytes: server.max_body_bytes,
      maxDepth: limits.max_depth,
      maxEvaluations: limits.max_evaluations,
      /** Most policy input one evaluations request may expand to (inherited parts per item). */
      maxBatchInputBytes: limits.max_batch_input_bytes,
    },
    shutdownTimeoutMs: server.shutdown_timeout_ms,
    /** Threads serving the main port (the main thread and workers − 1 worker threads). */
    workers: server.workers ?? availableParallelism(),
    /**
     * What bounds the work one connection can cause, and how the process
     * answers probes and stops. Applied to every listener (main, metrics,
     * probes). None can be switched off: an unbounded timeout or connection
     * count is what lets one client hold the process.
     */
    transport: {
      headersTimeoutMs: server.headers_timeout_ms,
      requestTimeoutMs: server.request_timeout_ms,
      keepAliveTimeoutMs: server.keep_alive_timeout_ms,
      maxConnections: server.max_connections,
      /** 0: unlimited. */
      maxRequestsPerConnection: server.max_requests_per_connection,
      probePort: server.probe_port,
      drainDelayMs: server.drain_delay_ms,
    },
    logLevel: log.level,
    /** Token issuers, callers, ops access, TLS, the servers registry and forward-auth. */
    auth: {
      issuers: file.issuers.map((issuer) => ({
        issuer: issuer.issuer,
        keys:
          issuer.jwks_uri !== undefined
            ? { jwksUri: issuer.jwks_uri }
            : issuer.jwks_file !== undefined
              ? { jwksFile: issuer.jwks_file }
              : { publicKeyFiles: issuer.public_key_files ?? [] },
        /**
         * The resources this issuer may mint tokens for; undefined: any
         * registered server. A token is always checked against the one server
         * it is used for.
         */
        audiences: issuer.audiences,
        algorithms: [...issuer.algorithms],
        requiredTyp: issuer.required_typ,
        clockToleranceS: issuer.clock_tolerance_s,
        maxTokenBytes: issuer.max_token_bytes,
        jwksTimeoutMs: issuer.jwks_timeout_ms,
        jwksCooldownS: issuer.jwks_cooldown_s,
        jwksRefreshS: issuer.jwks_refresh_s,
        subjectType: {
          claim: issuer.subject_type.claim,
          clientCredentials: issuer.subject_type.client_credentials,
          default: issuer.subject_type.default,
        },
      })),
      tokenCacheEntries: file.token_cache.max_entries,
      /** Undefined when the file has no `callers`: caller authentication is off. */
      callers,
      /**
       * `metricsOpen`: /metrics without credentials. Off once `callers` are
       * configured (decision counts, reasons and tool names describe
       * traffic); `ops.metrics_open: true` opts back in.
       */
      ops: {
        open: opsOpen,
        apiKeySha256: ops.api_key_sha256,
        metricsOpen: ops.metrics_open ?? (callers === undefined && opsOpen),
      },
      tls,
      /** The protected MCP servers (`servers:`): every token is bound to one of them. */
      servers: [...servers],
      /** How the forward-auth endpoint reads requests relayed by proxies. */
      forwardAuth: {
        /** CIDRs of proxies whose X-Forwarded-For and context headers are believed. */
        trustedProxies: file.forward_auth.trusted_proxies,
        batch: file.forward_auth.batch,
        /** Larger tool-call arguments are not passed to the policy (`arguments_omitted: true`). */
        maxArgumentBytes: file.forward_auth.max_argument_bytes,
        /** Request header (lower case) → context path, e.g. `x-device-trust` → `device.trust`. */
        contextHeaders: Object.fromEntries(
          Object.entries(file.forward_auth.context_headers).map(([header, path]) => [
            header.toLowerCase(),
            path,
          ]),
        ),
      },
      /** Settings that work but deserve an operator's attention (logged loudly at startup). */
      warnings: [...warnings],
    },
    /** Serve a non-loopback address without caller authentication. */
    allowUnauthenticatedCallers: server.allow_unauthenticated_callers,
    observability: {
      /** Serve /metrics on this separate port (same host) instead of the main listener. */
      metricsPort: server.metrics_port,
      /** `<server>/<tool>` names allowed as metric labels. */
      toolLabels: metrics.tool_labels,
      /** OAuth client ids allowed as metric labels. */
      clientLabels: metrics.client_labels,
      decisionLog: destination(decisionLog.destination),
      // The schema refuses "off" for the diagnostics log.
      diagnosticLog: diagnosticLog === "off" ? { stream: "stdout" as const } : diagnosticLog,
      /** `context` keys copied into decision records. */
      decisionLogContext: decisionLog.context,
      /** Put the whole (masked) policy input into decision records. */
      decisionLogInput: decisionLog.input,
      /** JSON pointers removed from decision records (defaults included). */
      decisionLogErase: [...new Set([...defaultErasePointers, ...decisionLog.erase])],
      /** Largest decision record, in bytes of JSON; larger values are replaced by `[TRUNCATED]`. */
      decisionLogMaxRecordBytes: decisionLog.max_record_bytes,
    },
  };
}

/** The PDP's whole configuration, read once at startup and passed down. */
export type Config = Readonly<ReturnType<typeof resolveConfig>>;
export type TransportConfig = Config["transport"];
export type ObservabilityConfig = Config["observability"];
/** The identity section: token issuers, callers, ops access, TLS, servers, forward-auth. */
export type AuthSettings = Config["auth"];
export type IssuerSettings = AuthSettings["issuers"][number];
export type CallerSettings = NonNullable<AuthSettings["callers"]>[number];
export type ForwardAuthSettings = AuthSettings["forwardAuth"];

/** The policy section resolved; also given by a refused configuration whose policy section is valid. */
export function resolvePolicy(policy: ConfigFile["policy"]) {
  return {
    bundlePath: policy.bundle ?? embeddedBundlePath,
    dataPath: policy.data,
    entrypoint: policy.entrypoint,
    /** Entrypoint listing configuration problems; checked at load when present. */
    configEntrypoint: policy.config_entrypoint.trim() === "" ? undefined : policy.config_entrypoint,
    /** Reload the bundle (when not the embedded one) and the data file when they change on disk. */
    watch: policy.watch,
    /** /ready fails (policy_stale) when the active source has not been checked for longer; off when undefined. */
    maxStalenessMs:
      policy.max_staleness_s === undefined ? undefined : policy.max_staleness_s * 1000,
    /** Bundle signature keys: with them, every bundle must be signed and verified. */
    signing: policy.signing && {
      keys: policy.signing.keys.map((key) => ({
        id: key.id,
        algorithm: key.algorithm,
        keyFile: key.key_file,
      })),
      keyId: policy.signing.keyid,
      scope: policy.signing.scope,
      exclude: policy.signing.exclude_files,
    },
    /** The bundle service polled for the bundle instead of reading bundlePath. */
    service: policy.service && {
      url: policy.service.url,
      resource: policy.service.resource,
      minDelayMs: policy.service.min_delay_s * 1000,
      maxDelayMs: policy.service.max_delay_s * 1000,
      longPollWaitS: policy.service.long_polling_timeout_s,
      timeoutMs: policy.service.timeout_s * 1000,
      maxBytes: policy.service.max_bytes,
      credentials: {
        bearerTokenFile: policy.service.credentials.bearer_token_file,
        bearerTokenEnv: policy.service.credentials.bearer_token_env,
        clientCertFile: policy.service.credentials.client_cert_file,
        clientKeyFile: policy.service.credentials.client_key_file,
        caFile: policy.service.credentials.ca_file,
      },
      persistDir: policy.service.persist_dir,
      persistedMaxAgeMs:
        policy.service.persisted_max_age_s === undefined
          ? undefined
          : policy.service.persisted_max_age_s * 1000,
    },
    /** A candidate evaluated on a sample of the decisions' inputs (the active bundle when none is named). */
    shadow:
      policy.shadow === undefined
        ? undefined
        : {
            bundlePath: policy.shadow.bundle ?? policy.bundle ?? embeddedBundlePath,
            dataPath: policy.shadow.data,
            sampleRate: policy.shadow.sample_rate,
          },
  };
}

export type PolicySettings = ReturnType<typeof resolvePolicy>;
