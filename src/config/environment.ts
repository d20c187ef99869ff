/**
 * The environment variables: deployment knobs, each overriding exactly one
 * key of the configuration file. A value is turned into the JSON the file
 * would hold (by the key's type in the schema) and then validated by the
 * same schema, so a variable and its key accept and refuse the same values.
 */
import { z } from "zod";
import { configFileSchema } from "./schema.ts";

/** A key path in the file, e.g. `["server", "port"]`. */
export type KeyPath = readonly (string | number)[];

/** Variable → the one file key it overrides. The README's reference is rendered from this table. */
export const environmentKeys = {
  HOST: ["server", "host"],
  PORT: ["server", "port"],
  PDP_PUBLIC_URL: ["server", "public_url"],
  PDP_MAX_BODY_BYTES: ["server", "max_body_bytes"],
  PDP_HEADERS_TIMEOUT_MS: ["server", "headers_timeout_ms"],
  PDP_REQUEST_TIMEOUT_MS: ["server", "request_timeout_ms"],
  PDP_KEEP_ALIVE_TIMEOUT_MS: ["server", "keep_alive_timeout_ms"],
  PDP_MAX_CONNECTIONS: ["server", "max_connections"],
  PDP_PROBE_PORT: ["server", "probe_port"],
  PDP_METRICS_PORT: ["server", "metrics_port"],
  PDP_WORKERS: ["server", "workers"],
  PDP_MAX_REQUESTS_PER_CONNECTION: ["server", "max_requests_per_connection"],
  PDP_DRAIN_DELAY_MS: ["server", "drain_delay_ms"],
  PDP_SHUTDOWN_TIMEOUT_MS: ["server", "shutdown_timeout_ms"],
  PDP_ALLOW_UNAUTHENTICATED_CALLERS: ["server", "allow_unauthenticated_callers"],
  PDP_BUNDLE: ["policy", "bundle"],
  PDP_DATA: ["policy", "data"],
  PDP_ENTRYPOINT: ["policy", "entrypoint"],
  PDP_CONFIG_ENTRYPOINT: ["policy", "config_entrypoint"],
  PDP_POLICY_WATCH: ["policy", "watch"],
  PDP_POLICY_MAX_STALENESS_S: ["policy", "max_staleness_s"],
  PDP_MAX_DEPTH: ["limits", "max_depth"],
  PDP_MAX_EVALUATIONS: ["limits", "max_evaluations"],
  PDP_MAX_BATCH_INPUT_BYTES: ["limits", "max_batch_input_bytes"],
  LOG_LEVEL: ["log", "level"],
  PDP_DIAGNOSTIC_LOG: ["log", "destination"],
  PDP_DECISION_LOG: ["decision_log", "destination"],
  PDP_DECISION_LOG_CONTEXT: ["decision_log", "context"],
  PDP_DECISION_LOG_INPUT: ["decision_log", "input"],
  PDP_DECISION_LOG_ERASE: ["decision_log", "erase"],
  PDP_DECISION_LOG_MAX_RECORD_BYTES: ["decision_log", "max_record_bytes"],
  PDP_METRICS_TOOL_LABELS: ["metrics", "tool_labels"],
  PDP_METRICS_CLIENT_LABELS: ["metrics", "client_labels"],
} as const satisfies Record<string, readonly [string, string]>;

export type EnvironmentVariable = keyof typeof environmentKeys;

/** The variable naming the configuration file itself (not a key of it). */
export const configFileVariable = "PDP_CONFIG";

/**
 * Variables whose empty value means something (an empty list, "switched
 * off"); every other variable set to nothing counts as not set.
 */
const emptyIsAValue: ReadonlySet<EnvironmentVariable> = new Set([
  "PDP_CONFIG_ENTRYPOINT",
  "PDP_DECISION_LOG_CONTEXT",
  "PDP_DECISION_LOG_ERASE",
  "PDP_METRICS_TOOL_LABELS",
  "PDP_METRICS_CLIENT_LABELS",
]);

/** One variable that is set: the key it overrides, the text as given, and the value for the schema. */
export interface EnvironmentOverride {
  variable: EnvironmentVariable;
  key: KeyPath;
  /** The value as the problem reports quote it (trimmed). */
  text: string;
  value: unknown;
}

type JsonType = "integer" | "boolean" | "array" | "string";

/** The JSON type of each overridable key, read from the schema itself. */
const keyTypes: ReadonlyMap<EnvironmentVariable, JsonType> = (() => {
  const json = z.toJSONSchema(configFileSchema, { io: "input", unrepresentable: "any" }) as {
    properties: Record<string, { properties: Record<string, { type?: string }> }>;
  };
  const types = new Map<EnvironmentVariable, JsonType>();
  for (const [variable, [section, key]] of Object.entries(environmentKeys)) {
    const type = json.properties[section]?.properties[key]?.type;
    if (type !== "integer" && type !== "boolean" && type !== "array" && type !== "string") {
      throw new Error(`${variable}: ${section}.${key} has no scalar or list type in the schema`);
    }
    types.set(variable as EnvironmentVariable, type);
  }
  return types;
})();

/**
 * The variables that are set, as overrides. Text that is not a number or a
 * boolean is passed on as text, so the schema refuses it with the key's own
 * message (`PORT=http: must be a whole number from 0 to 65535`).
 */
export function environmentOverrides(
  env: Readonly<Record<string, string | undefined>>,
): EnvironmentOverride[] {
  const overrides: EnvironmentOverride[] = [];
  for (const [name, key] of Object.entries(environmentKeys)) {
    const variable = name as EnvironmentVariable;
    const raw = env[variable];
    if (raw === undefined) continue;
    const trimmed = raw.trim();
    if (trimmed === "" && !emptyIsAValue.has(variable)) continue;
    overrides.push({
      variable,
      key,
      text: trimmed,
      value: valueOf(trimmed, keyTypes.get(variable)),
    });
  }
  return overrides;
}

function valueOf(text: string, type: JsonType | undefined): unknown {
  switch (type) {
    case "integer":
      return /^\d+$/.test(text) ? Number(text) : text;
    case "boolean":
      return text === "true" ? true : text === "false" ? false : text;
    case "array":
      return text
        .split(",")
        .map((item) => item.trim())
        .filter((item) => item !== "");
    default:
      return text;
  }
}
