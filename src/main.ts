import { createServer, type Server } from "node:http";
import { buildApp } from "./app.js";
import { loadConfig } from "./config.js";
import { StartupError } from "./errors.js";
import { createLogger } from "./observability/logger.js";

/**
 * Process entry: configuration → app → listen; SIGTERM/SIGINT drain in-flight
 * requests and exit. The only module that reads the environment or listens.
 */
async function main(): Promise<void> {
  const bootLogger = createLogger({ level: "info" });
  let config;
  try {
    config = loadConfig(process.env);
  } catch (error) {
    reportStartupFailure(bootLogger, error);
    return;
  }
  const logger = createLogger({ level: config.logLevel });

  let app;
  try {
    app = await buildApp({ config, logger });
  } catch (error) {
    reportStartupFailure(logger, error);
    return;
  }

  const server = createServer(app.listener);
  server.listen(config.port, config.host, () => {
    const address = server.address();
    const port = typeof address === "object" && address !== null ? address.port : config.port;
    logger.info("listening", { host: config.host, port, public_url: config.publicUrl });
  });
  server.on("error", (error) => {
    logger.error("cannot listen", { host: config.host, port: config.port, error: error.message });
    process.exitCode = 1;
  });

  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    logger.info("draining", { signal, timeout_ms: config.shutdownTimeoutMs });
    app.drain();
    shutdown(server, config.shutdownTimeoutMs, () => {
      logger.info("stopped");
    });
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

/** Stops accepting, lets in-flight requests finish, then closes what is left at the deadline. */
function shutdown(server: Server, timeoutMs: number, done: () => void): void {
  const deadline = setTimeout(() => {
    server.closeAllConnections();
  }, timeoutMs);
  deadline.unref();
  server.close(() => {
    clearTimeout(deadline);
    done();
  });
  server.closeIdleConnections();
}

function reportStartupFailure(logger: ReturnType<typeof createLogger>, error: unknown): void {
  if (error instanceof StartupError) {
    logger.error("cannot start", { code: error.code, problems: error.problems });
  } else {
    logger.error("cannot start", { error: error instanceof Error ? error.stack : String(error) });
  }
  process.exitCode = 1;
}

await main();
