import type { App } from "../app.ts";
import { ConfigError, type Config } from "../config/index.ts";
import { appendProblem } from "../observability/log-destination.ts";
import { loadActivePolicy, policySourceOf } from "../policy/policy-loader.ts";
import { StartupError } from "../errors.ts";
import { exitCodes, type CliIo } from "./cli.ts";
import { configurationOf, type ConfigurationFiles } from "./configuration.ts";
import { buildOfflineApp, type LoggedLine } from "./offline-app.ts";
import { readTlsFiles } from "./tls-files.ts";

/**
 * `mcp-pdp check`: everything serve would refuse to start with, without
 * listening: the configuration (environment and files), the TLS files, the
 * policy bundle and its config_errors verdict on the operator data. Every
 * problem goes to stderr and the exit code is 1; a valid setup prints what
 * would be served and exits 0. Warnings serve would log are printed either way.
 */
export async function check(io: CliIo, files: ConfigurationFiles): Promise<number> {
  const problems: string[] = [];
  const warnings: string[] = [];
  const refused = (error: unknown): void => {
    if (!(error instanceof StartupError)) throw error;
    problems.push(...error.problems.map((problem) => `${error.code}: ${problem}`));
  };
  let config: Config | undefined;
  let app: App | undefined;
  try {
    config = configurationOf(io.env, files);
  } catch (error) {
    refused(error);
    // The rest of the configuration is refused, but its policy section is fine: the policy's
    // own verdict (bundle, entrypoints, config_errors on the operator data) belongs in this run.
    if (error instanceof ConfigError && error.policy !== undefined) {
      await loadActivePolicy(policySourceOf(error.policy)).catch(refused);
    }
  }
  if (config !== undefined) {
    // The log files serve opens before anything else; checked without creating them.
    const logs = config.observability;
    for (const [variable, destination] of [
      ["PDP_DIAGNOSTIC_LOG", logs.diagnosticLog],
      ["PDP_DECISION_LOG", logs.decisionLog],
    ] as const) {
      if (typeof destination !== "object" || !("file" in destination)) continue;
      const problem = appendProblem(variable, destination.file);
      if (problem !== undefined) problems.push(`log_unwritable: ${problem}`);
    }
    try {
      readTlsFiles(config);
    } catch (error) {
      refused(error);
    }
    try {
      app = await buildOfflineApp(config, (line: LoggedLine) => {
        if (line.level === "warn") warnings.push(line.message);
        else if (line.level === "error") problems.push(line.message);
      });
    } catch (error) {
      refused(error);
    }
  }
  for (const warning of warnings) io.stderr.write(`warning: ${warning}\n`);
  if (config === undefined || app === undefined || problems.length > 0) {
    const count = problems.length === 1 ? "1 problem" : `${problems.length} problems`;
    io.stderr.write(`mcp-pdp check: ${count}\n${problems.map((p) => `  - ${p}\n`).join("")}`);
    return exitCodes.failed;
  }
  const scheme = config.auth.tls === undefined ? "http" : "https";
  io.stdout.write(
    [
      "mcp-pdp check: ok",
      `  bundle    ${config.policy.bundlePath} (revision ${app.engine.revision})`,
      `  data      ${config.policy.dataPath ?? "(the bundle's own)"}`,
      `  listen    ${scheme}://${config.host}:${config.port}`,
      "",
    ].join("\n"),
  );
  return exitCodes.ok;
}
