import { fileURLToPath } from "node:url";
import { defaultAuthSettings, readAuthSettings, type AuthSettings } from "./auth/auth-config.js";
import { StartupError } from "./errors.js";
import { defaultMaxRecordBytes } from "./observability/record-budget.js";

/** The PDP's whole configuration, read once at startup and passed down. */
export interface Config {
  /** Listen address; loopback by default. */
  host: string;
  port: number;
  /** Base URL clients reach the PDP at, published by metadata discovery. */
  publicUrl: string;
  policy: {
    bundlePath: string;
    dataPath: string | undefined;
    entrypoint: string;
    /** Entrypoint listing configuration problems; checked at load when present. */
    configEntrypoint: string | undefined;
  };
  limits: {
    maxBodyBytes: number;
    maxDepth: number;
    maxEvaluations: number;
    /** Most policy input one evaluations request may expand to (inherited parts per item). */
    maxBatchInputBytes: number;
  };
  shutdownTimeoutMs: number;
  transport: TransportConfig;
  logLevel: "error" | "warn" | "info" | "debug";
  /** Token issuers, callers, ops access and TLS, from the PDP_CONFIG file. */
  auth: AuthSettings;
  /** Serve a non-loopback address without caller authentication (PDP_ALLOW_UNAUTHENTICATED_CALLERS). */
  allowUnauthenticatedCallers: boolean;
  observability: ObservabilityConfig;
}

/**
 * What bounds the work one connection can cause, and how the process answers
 * probes and stops. Applied to every listener (main, metrics, probes).
 */
export interface TransportConfig {
  /** Time allowed to receive a request's headers (slow-header clients are cut off). */
  headersTimeoutMs: number;
  /** Time allowed to receive a whole request, body included. */
  requestTimeoutMs: number;
  /** How long an idle keep-alive connection stays open between requests (node adds 1 s). */
  keepAliveTimeoutMs: number;
  /** Connections per listener; beyond it new connections are closed at once. */
  maxConnections: number;
  /** Plain-HTTP port (same host) answering /health and /ready without credentials. */
  probePort: number | undefined;
  /** After SIGTERM, how long /ready answers 503 while everything else still serves. */
  drainDelayMs: number;
}

/** Where a log goes: a standard stream, a file, or nowhere. */
export type LogDestination = { stream: "stdout" | "stderr" } | { file: string } | "off";

export interface ObservabilityConfig {
  /** Serve /metrics on this separate port (same host) instead of the main listener. */
  metricsPort: number | undefined;
  /** `<server>/<tool>` names allowed as metric labels. */
  toolLabels: string[];
  /** OAuth client ids allowed as metric labels. */
  clientLabels: string[];
  decisionLog: LogDestination;
  diagnosticLog: Exclude<LogDestination, "off">;
  /** `context` keys copied into decision records. */
  decisionLogContext: string[];
  /** Put the whole (masked) policy input into decision records. */
  decisionLogInput: boolean;
  /** JSON pointers removed from decision records (defaults included). */
  decisionLogErase: string[];
  /** Largest decision record, in bytes of JSON; larger values are replaced by `[TRUNCATED]`. */
  decisionLogMaxRecordBytes: number;
}

/** Tool arguments can hold anything a user typed: never logged unless the operator asks. */
export const defaultErasePointers = ["/input/resource/properties/arguments"];

/** Whether a listen address is reachable only from this machine. */
export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** The compiled default policy, shipped in the repository and the package. */
export const embeddedBundlePath = fileURLToPath(
  new URL("../bundle/bundle.tar.gz", import.meta.url),
);

export const defaultEntrypoint = "mcp/authz/decision";
export const defaultConfigEntrypoint = "mcp/authz/config_errors";
export const defaultPort = 8180;

const logLevels = ["error", "warn", "info", "debug"] as const;

type Environment = Record<string, string | undefined>;

/**
 * Reads the configuration from environment variables (see README,
 * "Configuration"). Every problem is collected and reported together, each
 * naming its variable, so one restart fixes them all.
 */
export function loadConfig(env: Environment): Config {
  const problems: string[] = [];
  const text = (name: string, fallback: string): string => {
    const value = env[name];
    return value === undefined || value.trim() === "" ? fallback : value.trim();
  };
  const optionalText = (name: string): string | undefined => {
    const value = env[name]?.trim();
    return value === undefined || value === "" ? undefined : value;
  };
  const integer = (name: string, fallback: number, min: number, max: number): number => {
    const raw = env[name]?.trim();
    if (raw === undefined || raw === "") return fallback;
    const value = Number(raw);
    if (!/^\d+$/.test(raw) || !Number.isSafeInteger(value) || value < min || value > max) {
      problems.push(`${name}=${raw}: must be a whole number from ${min} to ${max}`);
      return fallback;
    }
    return value;
  };

  const host = text("HOST", "127.0.0.1");
  const port = integer("PORT", defaultPort, 0, 65535);
  const logLevel = text("LOG_LEVEL", "info");
  if (!(logLevels as readonly string[]).includes(logLevel)) {
    problems.push(`LOG_LEVEL=${logLevel}: must be one of ${logLevels.join(", ")}`);
  }
  const entrypoint = text("PDP_ENTRYPOINT", defaultEntrypoint);
  if (!/^[A-Za-z0-9_]+(\/[A-Za-z0-9_]+)*$/.test(entrypoint)) {
    problems.push(
      `PDP_ENTRYPOINT=${entrypoint}: must be a slash-separated path such as ${defaultEntrypoint}`,
    );
  }
  const configEntrypointRaw = env.PDP_CONFIG_ENTRYPOINT;
  const configEntrypoint =
    configEntrypointRaw === undefined
      ? defaultConfigEntrypoint
      : configEntrypointRaw.trim() || undefined;

  const configPath = optionalText("PDP_CONFIG");
  let auth = defaultAuthSettings;
  if (configPath !== undefined) {
    const read = readAuthSettings(configPath);
    auth = read.settings;
    problems.push(...read.problems);
  }
  const allowRaw = text("PDP_ALLOW_UNAUTHENTICATED_CALLERS", "false");
  if (allowRaw !== "true" && allowRaw !== "false") {
    problems.push(`PDP_ALLOW_UNAUTHENTICATED_CALLERS=${allowRaw}: must be true or false`);
  }
  const allowUnauthenticatedCallers = allowRaw === "true";
  if (!isLoopback(host) && auth.callers === undefined && !allowUnauthenticatedCallers) {
    problems.push(
      `HOST=${host}: a non-loopback address needs caller authentication (callers in PDP_CONFIG); to run without it anyway set PDP_ALLOW_UNAUTHENTICATED_CALLERS=true`,
    );
  }

  const publicUrl = text(
    "PDP_PUBLIC_URL",
    `${auth.tls === undefined ? "http" : "https"}://${host.includes(":") ? `[${host}]` : host}:${port}`,
  );
  try {
    const url = new URL(publicUrl);
    if (url.protocol !== "http:" && url.protocol !== "https:") throw new Error("not http(s)");
  } catch {
    problems.push(`PDP_PUBLIC_URL=${publicUrl}: must be an absolute http(s) URL`);
  }

  const destination = (name: string, fallback: string, allowOff: boolean): LogDestination => {
    const value = text(name, fallback);
    if (value === "stdout" || value === "stderr") return { stream: value };
    if (value === "off") {
      if (allowOff) return "off";
      problems.push(
        `${name}=off: the diagnostics log cannot be switched off; use stdout, stderr or a file path`,
      );
      return { stream: "stdout" };
    }
    return { file: value };
  };
  const list = (name: string, fallback: string[]): string[] => {
    const raw = env[name];
    if (raw === undefined) return fallback;
    return raw
      .split(",")
      .map((item) => item.trim())
      .filter((item) => item !== "");
  };
  const booleanFlag = (name: string): boolean => {
    const value = text(name, "false");
    if (value !== "true" && value !== "false")
      problems.push(`${name}=${value}: must be true or false`);
    return value === "true";
  };
  const metricsPortRaw = optionalText("PDP_METRICS_PORT");
  const metricsPort =
    metricsPortRaw === undefined ? undefined : integer("PDP_METRICS_PORT", 0, 0, 65535);
  const transport = readTransport(integer, optionalText, problems, port, metricsPort);
  const erase = list("PDP_DECISION_LOG_ERASE", []);
  for (const pointer of erase) {
    if (!pointer.startsWith("/"))
      problems.push(`PDP_DECISION_LOG_ERASE: ${pointer} is not a JSON pointer (/a/b)`);
  }
  const diagnosticLog = destination("PDP_DIAGNOSTIC_LOG", "stdout", false);
  const observability: ObservabilityConfig = {
    metricsPort,
    toolLabels: list("PDP_METRICS_TOOL_LABELS", []),
    clientLabels: list("PDP_METRICS_CLIENT_LABELS", []),
    decisionLog: destination("PDP_DECISION_LOG", "stdout", true),
    diagnosticLog: diagnosticLog === "off" ? { stream: "stdout" } : diagnosticLog,
    decisionLogContext: list("PDP_DECISION_LOG_CONTEXT", ["ip", "device", "location", "session"]),
    decisionLogInput: booleanFlag("PDP_DECISION_LOG_INPUT"),
    decisionLogErase: [...new Set([...defaultErasePointers, ...erase])],
    decisionLogMaxRecordBytes: integer(
      "PDP_DECISION_LOG_MAX_RECORD_BYTES",
      defaultMaxRecordBytes,
      1024,
      64 * 1024 * 1024,
    ),
  };

  const config: Config = {
    host,
    port,
    publicUrl: publicUrl.replace(/\/+$/, ""),
    policy: {
      bundlePath: text("PDP_BUNDLE", embeddedBundlePath),
      dataPath: optionalText("PDP_DATA"),
      entrypoint,
      configEntrypoint,
    },
    limits: {
      maxBodyBytes: integer("PDP_MAX_BODY_BYTES", 1024 * 1024, 1024, 64 * 1024 * 1024),
      maxDepth: integer("PDP_MAX_DEPTH", 32, 4, 512),
      maxEvaluations: integer("PDP_MAX_EVALUATIONS", 256, 1, 10000),
      maxBatchInputBytes: integer(
        "PDP_MAX_BATCH_INPUT_BYTES",
        8 * 1024 * 1024,
        64 * 1024,
        1024 * 1024 * 1024,
      ),
    },
    shutdownTimeoutMs: integer("PDP_SHUTDOWN_TIMEOUT_MS", 10000, 0, 600000),
    transport,
    logLevel: logLevel as Config["logLevel"],
    auth,
    allowUnauthenticatedCallers,
    observability,
  };
  if (config.limits.maxBatchInputBytes < config.limits.maxBodyBytes) {
    problems.push(
      `PDP_MAX_BATCH_INPUT_BYTES=${config.limits.maxBatchInputBytes}: must be at least PDP_MAX_BODY_BYTES (${config.limits.maxBodyBytes}), which one batch's body alone may reach`,
    );
  }
  if (problems.length > 0) throw new StartupError("config_invalid", problems);
  return Object.freeze(config);
}

/**
 * PDP_HEADERS_TIMEOUT_MS, PDP_REQUEST_TIMEOUT_MS, PDP_KEEP_ALIVE_TIMEOUT_MS,
 * PDP_MAX_CONNECTIONS, PDP_PROBE_PORT, PDP_DRAIN_DELAY_MS. None can be
 * switched off: an unbounded timeout or connection count is what lets one
 * client hold the process, so the largest values are still finite.
 */
function readTransport(
  integer: (name: string, fallback: number, min: number, max: number) => number,
  optionalText: (name: string) => string | undefined,
  problems: string[],
  port: number,
  metricsPort: number | undefined,
): TransportConfig {
  const headersTimeoutMs = integer("PDP_HEADERS_TIMEOUT_MS", 10000, 100, 600000);
  const requestTimeoutMs = integer("PDP_REQUEST_TIMEOUT_MS", 30000, 100, 600000);
  // node:http refuses a headers timeout longer than the request timeout (it could never fire).
  if (headersTimeoutMs > requestTimeoutMs) {
    problems.push(
      `PDP_HEADERS_TIMEOUT_MS=${headersTimeoutMs}: must not exceed PDP_REQUEST_TIMEOUT_MS (${requestTimeoutMs})`,
    );
  }
  const probePort =
    optionalText("PDP_PROBE_PORT") === undefined
      ? undefined
      : integer("PDP_PROBE_PORT", 0, 0, 65535);
  if (probePort !== undefined && probePort !== 0) {
    if (probePort === port) problems.push(`PDP_PROBE_PORT=${probePort}: is also PORT`);
    if (probePort === metricsPort)
      problems.push(`PDP_PROBE_PORT=${probePort}: is also PDP_METRICS_PORT`);
  }
  return {
    headersTimeoutMs,
    requestTimeoutMs,
    keepAliveTimeoutMs: integer("PDP_KEEP_ALIVE_TIMEOUT_MS", 5000, 100, 600000),
    maxConnections: integer("PDP_MAX_CONNECTIONS", 4096, 1, 1000000),
    probePort,
    drainDelayMs: integer("PDP_DRAIN_DELAY_MS", 5000, 0, 600000),
  };
}
