import { createServer, type RequestListener, type Server } from "node:http";
import { createServer as createTlsServer } from "node:https";
import { buildApp } from "../app.js";
import type { Config } from "../config/index.js";
import { StartupError } from "../errors.js";
import {
  FailureReporter,
  openLineWriter,
  StreamLineWriter,
} from "../observability/log-destination.js";
import { createLogger, diagnosticStream, type Logger } from "../observability/logger.js";
import { answerClientError } from "../http/client-error.js";
import { limitServer, serverOptions } from "../http/server-limits.js";
import { configurationOf, type ConfigurationFiles } from "./configuration.js";
import { readTlsFiles } from "./tls-files.js";

/**
 * `mcp-pdp serve`: configuration → app → listen (main, metrics, probe ports);
 * SIGTERM drains (readiness off, then in-flight requests finish) and exits;
 * SIGHUP reloads the local policy files. The only module that listens. A refusal to start
 * is logged and sets the exit code to 1.
 */
export async function serve(
  env: Readonly<Record<string, string | undefined>>,
  files: ConfigurationFiles = {},
): Promise<void> {
  // Until the configured destination is open: stdout, through a writer that never throws (a
  // refusal to start must not become a crash when stdout itself cannot be written).
  const bootLogger = createLogger({
    level: "info",
    stream: diagnosticStream(new StreamLineWriter(process.stdout), () => undefined),
  });
  let config;
  try {
    config = configurationOf(env, files);
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

  const transport = config.transport;
  let server: Server;
  try {
    server = limitServer(createListener(config, app.listener), transport);
  } catch (error) {
    reportStartupFailure(logger, error);
    return;
  }
  const servers: Server[] = [server];
  const metricsPort = config.observability.metricsPort;
  const metricsServer =
    app.metricsListener === undefined || metricsPort === undefined
      ? undefined
      : limitServer(createServer(serverOptions(transport), app.metricsListener), transport);
  if (metricsServer !== undefined) servers.push(metricsServer);
  const probePort = transport.probePort;
  const probeServer =
    probePort === undefined
      ? undefined
      : limitServer(createServer(serverOptions(transport), app.probeListener), transport);
  if (probeServer !== undefined) servers.push(probeServer);

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

  let state: "serving" | "draining" | "closing" = "serving";
  let drainTimer: NodeJS.Timeout | undefined;
  const close = (): void => {
    if (state === "closing") return;
    state = "closing";
    clearTimeout(drainTimer);
    logger.info("closing listeners", { timeout_ms: config.shutdownTimeoutMs });
    app.close();
    shutdown(servers, config.shutdownTimeoutMs, () => {
      logger.info("stopped");
    });
  };
  const listening = (name: string, target: Server, port: number, extra: object): void => {
    target.on("clientError", answerClientError);
    target.on("error", (error) => {
      logger.error(name === "main" ? "cannot listen" : `cannot listen for ${name}`, {
        host: config.host,
        port,
        error: error.message,
      });
      // Half a PDP (no probes, say) would look alive to nobody: stop everything.
      process.exitCode = 1;
      close();
    });
    target.listen(port, config.host, () => {
      const address = target.address();
      const bound = typeof address === "object" && address !== null ? address.port : port;
      logger.info(name === "main" ? "listening" : `${name} listening`, {
        host: config.host,
        port: bound,
        ...extra,
      });
    });
  };
  listening("main", server, config.port, { public_url: config.publicUrl });
  if (metricsServer !== undefined && metricsPort !== undefined)
    listening("metrics", metricsServer, metricsPort, { path: "/metrics" });
  if (probeServer !== undefined && probePort !== undefined)
    listening("probes", probeServer, probePort, { paths: ["/health", "/ready"] });

  // SIGTERM: /ready answers 503 for the drain delay (time for load balancers and endpoint
  // lists to take the PDP out) while every request is still served; then the listeners stop
  // accepting and in-flight requests finish. SIGINT (an operator's Ctrl-C) skips the delay,
  // and a second signal ends it early.
  const stop = (signal: NodeJS.Signals): void => {
    if (state === "closing") return;
    if (state === "draining") {
      close();
      return;
    }
    state = "draining";
    const delayMs = signal === "SIGTERM" ? transport.drainDelayMs : 0;
    logger.info("draining", {
      signal,
      drain_delay_ms: delayMs,
      timeout_ms: config.shutdownTimeoutMs,
    });
    app.drain();
    drainTimer = setTimeout(close, delayMs);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  // SIGHUP reloads PDP_BUNDLE and PDP_DATA now; the outcome (activated, unchanged, refused with
  // the active policy kept) is a diagnostics line from the app's activation listener.
  process.on("SIGHUP", () => {
    if (state !== "serving") return;
    void app.reloadPolicy("signal");
  });
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
  const options = serverOptions(config.transport);
  const tls = readTlsFiles(config);
  if (tls === undefined) return createServer(options, listener);
  return createTlsServer(
    {
      ...options,
      cert: tls.cert,
      key: tls.key,
      ...(tls.clientCa === undefined
        ? {}
        : { ca: tls.clientCa, requestCert: true, rejectUnauthorized: true }),
      minVersion: "TLSv1.2",
    },
    listener,
  );
}

/** Stops accepting, lets in-flight requests finish, then closes what is left at the deadline. */
function shutdown(servers: readonly Server[], timeoutMs: number, done: () => void): void {
  const deadline = setTimeout(() => {
    for (const server of servers) server.closeAllConnections();
  }, timeoutMs);
  deadline.unref();
  let open = servers.length;
  for (const server of servers) {
    server.close(() => {
      open -= 1;
      if (open > 0) return;
      clearTimeout(deadline);
      done();
    });
    server.closeIdleConnections();
  }
}

function reportStartupFailure(logger: Logger, error: unknown): void {
  if (error instanceof StartupError) {
    logger.error("cannot start", { code: error.code, problems: error.problems });
  } else {
    logger.error("cannot start", { error: error instanceof Error ? error.stack : String(error) });
  }
  process.exitCode = 1;
}
