import { readFileSync } from "node:fs";
import { createServer, type RequestListener, type Server } from "node:http";
import { createServer as createTlsServer } from "node:https";
import { buildApp } from "./app.js";
import { loadConfig, type Config } from "./config.js";
import { StartupError } from "./errors.js";
import {
  FailureReporter,
  openLineWriter,
  StreamLineWriter,
} from "./observability/log-destination.js";
import { createLogger, diagnosticStream, type Logger } from "./observability/logger.js";

/**
 * Process entry: configuration → app → listen; SIGTERM/SIGINT drain in-flight
 * requests and exit. The only module that reads the environment or listens.
 */
async function main(): Promise<void> {
  // Until the configured destination is open: stdout, through a writer that never throws (a
  // refusal to start must not become a crash when stdout itself cannot be written).
  const bootLogger = createLogger({
    level: "info",
    stream: diagnosticStream(new StreamLineWriter(process.stdout), () => undefined),
  });
  let config;
  try {
    config = loadConfig(process.env);
  } catch (error) {
    reportStartupFailure(bootLogger, error);
    return;
  }
  let logger;
  try {
    logger = createDiagnosticLogger(config);
  } catch (error) {
    reportStartupFailure(bootLogger, error);
    return;
  }

  let app;
  try {
    app = await buildApp({ config, logger });
  } catch (error) {
    reportStartupFailure(logger, error);
    return;
  }

  let server: Server;
  try {
    server = createListener(config, app.listener);
  } catch (error) {
    reportStartupFailure(logger, error);
    return;
  }
  server.listen(config.port, config.host, () => {
    const address = server.address();
    const port = typeof address === "object" && address !== null ? address.port : config.port;
    logger.info("listening", { host: config.host, port, public_url: config.publicUrl });
  });
  const metricsPort = config.observability.metricsPort;
  const metricsServer =
    app.metricsListener === undefined || metricsPort === undefined
      ? undefined
      : createServer(app.metricsListener);
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
 * The diagnostics log on its configured destination, opened now (a file that
 * cannot be appended to stops the start). Lines it later fails to write are
 * reported, at most once per 10 s, on the other standard stream (stderr, or
 * stdout when the diagnostics are on stderr) since they cannot be reported in
 * the log that is failing.
 */
function createDiagnosticLogger(config: Config): Logger {
  const destination = config.observability.diagnosticLog;
  const writer = openLineWriter("PDP_DIAGNOSTIC_LOG", destination);
  const fallback = new StreamLineWriter(
    "stream" in destination && destination.stream === "stderr" ? process.stdout : process.stderr,
  );
  const reporter = new FailureReporter((summary) => {
    fallback.write(
      `${JSON.stringify({
        level: "error",
        log: "diagnostic",
        message: "diagnostic lines lost: PDP_DIAGNOSTIC_LOG cannot be written",
        destination: "file" in destination ? destination.file : destination.stream,
        lines: summary.counts,
        error: summary.lastError ?? null,
        timestamp: new Date().toISOString(),
      })}\n`,
    );
  });
  return createLogger({
    level: config.logLevel,
    stream: diagnosticStream(writer, (reason, error) => {
      reporter.report(reason, error);
    }),
  });
}

/**
 * Plain HTTP, or HTTPS when PDP_CONFIG has `tls`; with `tls.client_ca_file`
 * the handshake requires a client certificate signed by that CA (mTLS).
 */
function createListener(config: Config, listener: RequestListener): Server {
  const tls = config.auth.tls;
  if (tls === undefined) return createServer(listener);
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

function reportStartupFailure(logger: Logger, error: unknown): void {
  if (error instanceof StartupError) {
    logger.error("cannot start", { code: error.code, problems: error.problems });
  } else {
    logger.error("cannot start", { error: error instanceof Error ? error.stack : String(error) });
  }
  process.exitCode = 1;
}

await main();
