import { readFileSync } from "node:fs";
import { createServer, type RequestListener, type Server } from "node:http";
import { createServer as createTlsServer } from "node:https";
import { buildApp } from "./app.js";
import { loadConfig, type Config } from "./config.js";
import { StartupError } from "./errors.js";
import { answerClientError } from "./http/client-error.js";
import { limitServer, serverOptions } from "./http/server-limits.js";
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
  const diagnostics = config.observability.diagnosticLog;
  const logger = createLogger({
    level: config.logLevel,
    ...("file" in diagnostics
      ? { file: diagnostics.file }
      : { stream: diagnostics.stream === "stderr" ? process.stderr : process.stdout }),
  });

  let app;
  try {
    app = await buildApp({ config, logger });
  } catch (error) {
    reportStartupFailure(logger, error);
    return;
  }

  let server: Server;
  try {
    server = limitServer(createListener(config, app.listener), config.transport);
  } catch (error) {
    reportStartupFailure(logger, error);
    return;
  }
  // A rejection nothing handled is a bug. Node's default (exit) would let one request that
  // triggers it stop the PDP for everyone; the request paths answer 500 themselves, so this
  // is the last resort, not the fix. The decision state (policy, keys, caches) is replaced
  // whole, never left half-written by a failed promise, so the process logs it loudly, counts
  // it (mcp_pdp_unhandled_rejections_total, for an alert) and keeps serving. Synchronous
  // uncaught exceptions keep node's default: the process ends and is restarted.
  process.on("unhandledRejection", (reason) => {
    app.metrics.recordUnhandledRejection();
    logger.error("UNHANDLED REJECTION (a bug): logged and counted, the PDP keeps serving", {
      error: reason instanceof Error ? reason.stack : String(reason),
    });
  });

  server.on("clientError", answerClientError);
  server.listen(config.port, config.host, () => {
    const address = server.address();
    const port = typeof address === "object" && address !== null ? address.port : config.port;
    logger.info("listening", { host: config.host, port, public_url: config.publicUrl });
  });
  const metricsPort = config.observability.metricsPort;
  const metricsServer =
    app.metricsListener === undefined || metricsPort === undefined
      ? undefined
      : limitServer(
          createServer(serverOptions(config.transport), app.metricsListener),
          config.transport,
        );
  metricsServer?.on("clientError", answerClientError);
  metricsServer?.listen(metricsPort, config.host, () => {
    const address = metricsServer.address();
    const port = typeof address === "object" && address !== null ? address.port : metricsPort;
    logger.info("metrics listening", { host: config.host, port, path: "/metrics" });
  });
  metricsServer?.on("error", (error) => {
    logger.error("cannot listen for metrics", { port: metricsPort, error: error.message });
    process.exitCode = 1;
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
    metricsServer?.close();
    metricsServer?.closeAllConnections();
    shutdown(server, config.shutdownTimeoutMs, () => {
      logger.info("stopped");
    });
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

/**
 * Plain HTTP, or HTTPS when PDP_CONFIG has `tls`; with `tls.client_ca_file`
 * the handshake requires a client certificate signed by that CA (mTLS).
 */
function createListener(config: Config, listener: RequestListener): Server {
  const tls = config.auth.tls;
  const options = serverOptions(config.transport);
  if (tls === undefined) return createServer(options, listener);
  const read = (key: string, path: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (error) {
      throw new StartupError("config_invalid", [
        `PDP_CONFIG tls.${key}: ${path}: ${error instanceof Error ? error.message : String(error)}`,
      ]);
    }
  };
  const clientCa =
    tls.clientCaFile === undefined ? undefined : read("client_ca_file", tls.clientCaFile);
  return createTlsServer(
    {
      ...options,
      cert: read("cert_file", tls.certFile),
      key: read("key_file", tls.keyFile),
      ...(clientCa === undefined
        ? {}
        : { ca: clientCa, requestCert: true, rejectUnauthorized: true }),
      minVersion: "TLSv1.2",
    },
    listener,
  );
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
