import { loadConfig, type Config } from "../config/index.ts";

/** What a command line names instead of the environment (`--config`, `--data`, `--bundle`). */
export interface ConfigurationFiles {
  config?: string | undefined;
  data?: string | undefined;
  bundle?: string | undefined;
}

/**
 * The one way every command builds its configuration: the environment, with
 * the files given on the command line in place of the variables that name
 * them. Throws StartupError listing every problem. (The configuration module
 * is the only reader of both; this is the one place the CLI calls it.)
 */
export function configurationOf(
  env: Readonly<Record<string, string | undefined>>,
  files: ConfigurationFiles = {},
): Config {
  const named: Record<string, string> = {};
  if (files.config !== undefined) named.PDP_CONFIG = files.config;
  if (files.data !== undefined) named.PDP_DATA = files.data;
  if (files.bundle !== undefined) named.PDP_BUNDLE = files.bundle;
  return loadConfig({ ...env, ...named });
}
