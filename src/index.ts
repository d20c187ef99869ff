/**
 * mcp-pdp as a library: build the PDP from a configuration and serve its
 * listener yourself (`buildApp` never listens). Importing this module starts
 * nothing; the `mcp-pdp` executable is dist/main.js, the PEP library for MCP
 * servers is its own package, `@mcp-pdp/pep` (packages/pep).
 */
export { buildApp, type App, type AppDependencies } from "./app.js";
export { loadConfig, type Config } from "./config/index.js";
export { createLogger, type Logger, type LoggerOptions } from "./observability/logger.js";
export type { Clock, DecisionEngine } from "./decision/decision-engine.js";
export type { AccessRequest, Decision, Entity, Reason } from "./decision/decision.js";
export type { ApiRequest, ApiResponse } from "./api/api-types.js";
export { ApiError, StartupError, type ApiErrorCode, type StartupErrorCode } from "./errors.js";
