import type { RequestListener, Server } from "node:http";
import { createServer } from "node:http";
import { createServer as createTlsServer } from "node:https";
import type { Config } from "../config/index.ts";
import { StartupError } from "../errors.ts";
import { serverOptions } from "../http/server-limits.ts";
import {
  FailureReporter,
  openLineWriter,
  StreamLineWriter,
} from "../observability/log-destination.ts";
import { createLogger, diagnosticStream, type Logger } from "../observability/logger.ts";
import type { Metrics } from "../observability/metrics.ts";
import { readTlsFiles } from "./tls-files.ts";

/**
 * What the main thread and every worker thread do alike to serve: open the
 * diagnostics log, build the main listener, survive an unhandled rejection,
 * stop, and report a refusal to start.
 */

/**
 * The diagnostics log on its configured destination, opened now (a file that
 * cannot be appended to stops the start). Lines it later fails to write are
 * reported, at most once per 10 s, on the other standard stream (stderr, or
 * stdout when the diagnostics are on stderr) since they cannot be reported in
 * the log that is failing.
 */
export function createDiagnosticLogger(config: Config): Logger {
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
export function createListener(config: Config, listener: RequestListener): Server {
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
export function shutdown(servers: readonly Server[], timeoutMs: number, done: () => void): void {
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

/**
 * A rejection nothing handled is a bug. Node's default (exit) would let one request that
 * triggers it stop the PDP for everyone; the request paths answer 500 themselves, so this is
 * the last resort, not the fix. The decision state (policy, keys, caches) is replaced whole,
 * never left half-written by a failed promise, so the thread logs it loudly, counts it
 * (mcp_pdp_unhandled_rejections_total, for an alert) and keeps serving. Synchronous uncaught
 * exceptions keep node's default: the process (or the worker thread, which is replaced) ends.
 */
export function keepServingOnUnhandledRejection(metrics: Metrics, logger: Logger): void {
  process.on("unhandledRejection", (reason) => {
    metrics.recordUnhandledRejection();
    logger.error("UNHANDLED REJECTION (a bug): logged and counted, the PDP keeps serving", {
      error: reason instanceof Error ? reason.stack : String(reason),
    });
  });
}

export function reportStartupFailure(logger: Logger, error: unknown): void {
  if (error instanceof StartupError) {
    logger.error("cannot start", { code: error.code, problems: error.problems });
  } else {
    logger.error("cannot start", { error: error instanceof Error ? error.stack : String(error) });
  }
  process.exitCode = 1;
}
