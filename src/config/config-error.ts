import type { z } from "zod";
import { StartupError } from "../errors.ts";
import type { KeyPath } from "./environment.ts";
import type { PolicySettings } from "./resolve-config.ts";

/**
 * One configuration problem. `path` is what the operator edits: the
 * environment variable (`PORT`) when the value came from one, else the key
 * in the file (`callers[2].api_key_sha256`).
 */
export interface ConfigProblem {
  path: string;
  message: string;
}

/**
 * The refusal of a configuration: every problem of one run, env and file
 * alike. `problems` (inherited) holds them as the lines main.ts logs;
 * `details` holds them structured, for `mcp-pdp check` and tests.
 */
export class ConfigError extends StartupError {
  readonly details: readonly ConfigProblem[];
  /**
   * The policy settings when the policy section itself has no problem, so
   * `mcp-pdp check` can report the policy's verdict in the same run.
   */
  readonly policy: PolicySettings | undefined;

  constructor(
    details: readonly ConfigProblem[],
    lines: readonly string[],
    policy?: PolicySettings,
  ) {
    super("config_invalid", lines);
    this.name = "ConfigError";
    this.details = details;
    this.policy = policy;
  }
}

/** `callers[2].api_key_sha256`; the empty path is the file itself. */
export function keyText(path: KeyPath): string {
  if (path.length === 0) return "(top level)";
  return path
    .map((segment, index) =>
      typeof segment === "number" ? `[${segment}]` : index === 0 ? segment : `.${segment}`,
    )
    .join("");
}

/** A problem found by the schema, at a key path of the file: the one formatter of schema issues. */
export interface KeyProblem {
  key: KeyPath;
  message: string;
}

export function keyProblems(issues: readonly z.core.$ZodIssue[]): KeyProblem[] {
  const problems: KeyProblem[] = [];
  for (const issue of issues) {
    const key = issue.path.filter(
      (segment): segment is string | number => typeof segment !== "symbol",
    );
    switch (issue.code) {
      case "unrecognized_keys":
        for (const extra of issue.keys)
          problems.push({ key: [...key, extra], message: "is not a known key" });
        break;
      case "invalid_key":
        problems.push({
          key,
          message: `is not a valid name: ${issue.issues[0]?.message ?? "invalid"}`,
        });
        break;
      case "invalid_type":
        problems.push({
          key,
          message:
            issue.input === undefined
              ? "is required"
              : key.length === 0
                ? "must be a mapping of sections (issues, servers, callers, …)"
                : issue.message,
        });
        break;
      default:
        problems.push({ key, message: issue.message });
    }
  }
  return problems;
}
