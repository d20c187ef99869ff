/**
 * The configuration: one schema (schema.ts), the environment variables over
 * it (environment.ts), rules across keys (rules.ts), one loader that reports
 * every problem of a run (load-config.ts), the Config it returns
 * (resolve-config.ts) and the README reference rendered from the schema
 * (reference.ts).
 */
export { ConfigError, type ConfigProblem } from "./config-error.ts";
export { environmentKeys, type EnvironmentVariable } from "./environment.ts";
export { loadConfig, type LoadConfigOptions } from "./load-config.ts";
export {
  embeddedBundlePath,
  type AuthSettings,
  type CallerSettings,
  type Config,
  type ForwardAuthSettings,
  type IssuerSettings,
  type LogDestination,
  type ObservabilityConfig,
  type PolicySettings,
  type ServerSettings,
  type TransportConfig,
} from "./resolve-config.ts";
export { isLoopback } from "./rules.ts";
export {
  apiPermissions,
  asymmetricAlgorithms,
  defaultMaxRecordBytes,
  knownProxies,
  type ApiPermission,
  type ProxyKind,
  defaultConfigEntrypoint,
  defaultEntrypoint,
  defaultErasePointers,
  defaultPort,
  type ConfigFileInput,
} from "./schema.ts";
