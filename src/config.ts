import { fileURLToPath } from "node:url";
import { defaultAuthSettings, readAuthSettings, type AuthSettings } from "./auth/auth-config.js";
import { StartupError } from "./errors.js";

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
  };
  shutdownTimeoutMs: number;
  logLevel: "error" | "warn" | "info" | "debug";
  /** Token issuers, callers, ops access and TLS, from the PDP_CONFIG file. */
  auth: AuthSettings;
  /** Serve a non-loopback address without caller authentication (PDP_ALLOW_UNAUTHENTICATED_CALLERS). */
  allowUnauthenticatedCallers: boolean;
}

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
    },
    shutdownTimeoutMs: integer("PDP_SHUTDOWN_TIMEOUT_MS", 10000, 0, 600000),
    logLevel: logLevel as Config["logLevel"],
    auth,
    allowUnauthenticatedCallers,
  };
  if (problems.length > 0) throw new StartupError("config_invalid", problems);
  return Object.freeze(config);
}
