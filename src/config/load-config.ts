import { readFileSync } from "node:fs";
import { z } from "zod";
import { parseYamlDocument } from "./yaml-document.ts";
import {
  ConfigError,
  keyProblems,
  keyText,
  type ConfigProblem,
  type KeyProblem,
} from "./config-error.ts";
import {
  configFileVariable,
  environmentKeys,
  environmentOverrides,
  type EnvironmentOverride,
  type KeyPath,
} from "./environment.ts";
import { resolveConfig, resolvePolicy, type Config } from "./resolve-config.ts";
import { checkRules, type ValidSections } from "./rules.ts";
import { configFileSchema } from "./schema.ts";

export interface LoadConfigOptions {
  /** The configuration file to read instead of `PDP_CONFIG` (the CLI's `--config`). */
  configFile?: string;
}

/** Sections only the file can set: unknown when the file could not be read. */
const fileOnlySections = new Set([
  "issuers",
  "token_cache",
  "servers",
  "callers",
  "ops",
  "tls",
  "forward_auth",
]);

type Json = Record<string, unknown>;

const isMapping = (value: unknown): value is Json =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/**
 * Reads the whole configuration: the PDP_CONFIG file (YAML or JSON), the
 * environment variables over it (each overrides one key), and the files both
 * refer to (which must exist and be readable). Nothing is built here. Every
 * problem of the run is collected and thrown together as one ConfigError,
 * each naming its variable or key, so one restart fixes them all.
 */
export function loadConfig(
  env: Readonly<Record<string, string | undefined>>,
  options: LoadConfigOptions = {},
): Config {
  const path = options.configFile ?? optional(env[configFileVariable]);
  const details: ConfigProblem[] = [];
  const lines: string[] = [];

  let file: Json = {};
  let fileKnown = true;
  if (path !== undefined) {
    const read = readFile(path);
    if ("error" in read) {
      details.push({ path: configFileVariable, message: `${path}: ${read.error}` });
      lines.push(`${configFileVariable} ${path}: ${read.error}`);
      fileKnown = false;
    } else if (!isMapping(read.content)) {
      details.push({ path: "(top level)", message: "must be a mapping of sections" });
      lines.push(`${configFileVariable} ${path}: (top level): must be a mapping of sections`);
      fileKnown = false;
    } else {
      file = read.content;
    }
  }

  const overrides = environmentOverrides(env);
  const raw = overlay(file, overrides);
  const parsed = configFileSchema.safeParse(raw, { reportInput: true });
  const found: KeyProblem[] = [];
  const sections: ValidSections = {};
  if (parsed.success) {
    for (const [name, value] of Object.entries(parsed.data)) {
      Object.assign(sections, { [name]: { value } });
    }
    for (const name of ["callers", "tls"] as const) sections[name] ??= { value: undefined };
  } else {
    found.push(...keyProblems(parsed.error.issues));
    // Each section on its own, so rules can still run on the ones that passed.
    for (const [name, schema] of Object.entries(configFileSchema.shape)) {
      const section = schema.safeParse(raw[name]);
      if (section.success) Object.assign(sections, { [name]: { value: section.data } });
      else if (salvaged.has(name)) {
        Object.assign(sections, { [name]: { value: salvage(schema, raw[name]) } });
      }
    }
  }
  if (!fileKnown) {
    for (const name of fileOnlySections) Reflect.deleteProperty(sections, name);
  }

  const source = (key: KeyPath): EnvironmentOverride | "file" | "default" => {
    const override = overrides.find((o) => startsWith(key, o.key));
    if (override !== undefined) return override;
    return path !== undefined && valueAt(file, key) !== undefined ? "file" : "default";
  };
  const valueOf = (key: KeyPath): unknown => {
    const [section, ...rest] = key;
    return valueAt(sections[section as keyof ValidSections]?.value, rest);
  };
  const variableOf = (key: KeyPath): string | undefined =>
    Object.entries(environmentKeys).find(
      ([, k]) => startsWith(key, k) && k.length === key.length,
    )?.[0];
  const name = (key: KeyPath): string => {
    const from = source(key);
    if (from === "file") return keyText(key);
    return typeof from === "object" ? from.variable : (variableOf(key) ?? keyText(key));
  };

  const rules = checkRules(sections, name);
  found.push(...rules.problems);
  for (const problem of found) {
    const from = source(problem.key);
    const variable = typeof from === "object" ? from.variable : variableOf(problem.key);
    if (from !== "file" && variable !== undefined) {
      const text = typeof from === "object" ? from.text : quoted(valueOf(problem.key));
      const rest = typeof from === "object" ? problem.key.slice(from.key.length) : [];
      const message = rest.length === 0 ? problem.message : `${keyText(rest)}: ${problem.message}`;
      details.push({ path: variable, message });
      lines.push(`${variable}=${text}: ${message}`);
    } else {
      const key = keyText(problem.key);
      details.push({ path: key, message: problem.message });
      lines.push(
        path === undefined
          ? `${key}: ${problem.message}`
          : `${configFileVariable} ${path}: ${key}: ${problem.message}`,
      );
    }
  }
  if (details.length > 0 || !parsed.success) {
    const policy = sections.policy?.value;
    const policyValid =
      policy !== undefined && !found.some((problem) => problem.key[0] === "policy");
    throw new ConfigError(details, lines, policyValid ? resolvePolicy(policy) : undefined);
  }

  const warnings = rules.warnings.map((warning) =>
    path === undefined ? warning : `${configFileVariable} ${path}: ${warning}`,
  );
  return Object.freeze(resolveConfig(parsed.data, rules.servers ?? [], warnings));
}

/** Sections whose valid keys (or entries) the rules may read even when others are wrong. */
const salvaged = new Set(["server", "limits", "servers", "forward_auth"]);

/** The keys of a mapping (or entries of a record) that pass the schema on their own. */
function salvage(schema: z.ZodType, raw: unknown): Json {
  let inner: z.ZodType = schema;
  while (
    inner instanceof z.ZodDefault ||
    inner instanceof z.ZodPrefault ||
    inner instanceof z.ZodOptional
  ) {
    inner = inner.unwrap() as z.ZodType;
  }
  const valid: Json = {};
  if (!isMapping(raw)) return valid;
  for (const [key, value] of Object.entries(raw)) {
    const entry =
      // Own keys only: `constructor` or `toString` in a file must not find the prototype's.
      inner instanceof z.ZodObject
        ? Object.hasOwn(inner.shape, key)
          ? (inner.shape as Record<string, z.ZodType>)[key]
          : undefined
        : inner instanceof z.ZodRecord
          ? (inner.valueType as z.ZodType)
          : undefined;
    const parsed = entry?.safeParse(value);
    if (parsed?.success === true) valid[key] = parsed.data;
  }
  if (inner instanceof z.ZodObject) {
    // Keys left out take their defaults, as the whole section would have.
    const shape: Record<string, z.ZodType> = inner.shape;
    for (const [key, entry] of Object.entries(shape)) {
      if (!Object.hasOwn(raw, key)) {
        const parsed = entry.safeParse(undefined);
        if (parsed.success && parsed.data !== undefined) valid[key] = parsed.data;
      }
    }
  }
  return valid;
}

/** A value as a variable would have spelled it. */
function quoted(value: unknown): string {
  return typeof value === "string" ? value : JSON.stringify(value ?? null);
}

function optional(value: string | undefined): string | undefined {
  const trimmed = value?.trim();
  return trimmed === undefined || trimmed === "" ? undefined : trimmed;
}

/** The parsed file, or why it could not be read or parsed (first line of the error). */
function readFile(path: string): { content: unknown } | { error: string } {
  try {
    return { content: parseYamlDocument(readFileSync(path, "utf8")) };
  } catch (error) {
    return {
      error: error instanceof Error ? (error.message.split("\n")[0] ?? "") : String(error),
    };
  }
}

/** The file with each variable's value set at its key (the file itself is not changed). */
function overlay(file: Json, overrides: readonly EnvironmentOverride[]): Json {
  const raw: Json = { ...file };
  for (const { key, value } of overrides) {
    const [section, name] = key as readonly [string, string];
    const current = raw[section];
    // A section that is not a mapping is the schema's to refuse; the variable cannot fix it.
    if (current !== undefined && !isMapping(current)) continue;
    raw[section] = { ...(current ?? {}), [name]: value };
  }
  return raw;
}

function startsWith(key: KeyPath, prefix: KeyPath): boolean {
  return prefix.length <= key.length && prefix.every((segment, i) => key[i] === segment);
}

function valueAt(value: unknown, key: KeyPath): unknown {
  let current = value;
  for (const segment of key) {
    if (typeof current !== "object" || current === null) return undefined;
    current = (current as Record<string | number, unknown>)[segment];
  }
  return current;
}
