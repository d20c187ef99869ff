/**
 * mcp-pdp as a library: build the PDP from a configuration and serve its
 * listener yourself (`buildApp` never listens). Importing this module starts
 * nothing; the `mcp-pdp` executable is dist/main.js, the PEP library for MCP
 * servers is its own package, `@mcp-pdp/pep` (packages/pep).
 */
export { buildApp, type App, type AppDependencies } from "./app.ts";
export { loadConfig, type Config } from "./config/index.ts";
export { createLogger, type Logger, type LoggerOptions } from "./observability/logger.ts";
export type { Clock, DecisionEngine } from "./decision/decision-engine.ts";
export type { AccessRequest, Decision, Entity, Reason } from "./decision/decision.ts";
export type { ApiRequest, ApiResponse } from "./api/api-types.ts";
export { ApiError, StartupError, type ApiErrorCode, type StartupErrorCode } from "./errors.ts";
