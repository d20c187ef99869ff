import { createServer, type Server } from "node:http";
import { createServer as createNetServer } from "node:net";
import { buildApp, type App } from "../app.ts";
import { StreamLineWriter } from "../observability/log-destination.ts";
import { createLogger, diagnosticStream } from "../observability/logger.ts";
import { answerClientError } from "../http/client-error.ts";
import { limitServer, serverOptions } from "../http/server-limits.ts";
import { configurationOf, type ConfigurationFiles } from "./configuration.ts";
import {
  createDiagnosticLogger,
  createListener,
  keepServingOnUnhandledRejection,
  reportStartupFailure,
  shutdown,
} from "./serving.ts";
import { needsRelay } from "./line-relay.ts";
import { WorkerPool } from "./worker-pool.ts";

/**
 * `mcp-pdp serve`: configuration → app → listen (main, metrics, probe ports),
 * then PDP_WORKERS − 1 worker threads on the main port beside the main thread;
 * SIGTERM drains (readiness off, then in-flight requests finish) and exits;
 * SIGHUP reloads the local policy files. The only module that listens (with
 * serve-worker.ts, each worker's). A refusal to start is logged and sets the
 * exit code to 1.
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

  // Built before the app, started once the main listener has its port; until every worker
  // listens, /ready says not yet.
  let app: App | undefined;
  const pool =
    config.workers > 1
      ? new WorkerPool({
          count: config.workers - 1,
          config,
          logger,
          get metrics() {
            return started().metrics;
          },
          answers: () => started().coordinatorAnswers,
          current: () => ({
            active: started().policy.current(),
            source: started().policy.activeSource,
          }),
          // A pipe cannot take several threads' long lines whole: the main thread writes them.
          ...(needsRelay(config.observability.decisionLog)
            ? { decisionLines: () => started().decisionLines }
            : {}),
        })
      : undefined;
  const started = (): App => {
    if (app === undefined) throw new Error("the worker pool runs only once the app is built");
    return app;
  };
  try {
    app = await buildApp({ config, logger, ...(pool === undefined ? {} : { workers: pool }) });
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

  keepServingOnUnhandledRejection(app.metrics, logger);
  const served = app;
  // Every activation reaches every worker (the main thread swapped first).
  served.policy.onActivation((outcome, current, trigger) => {
    if (outcome.result === "activated") pool?.activate(current, outcome.source, trigger);
  });

  let state: "serving" | "draining" | "closing" = "serving";
  let drainTimer: NodeJS.Timeout | undefined;
  const close = (): void => {
    if (state === "closing") return;
    state = "closing";
    clearTimeout(drainTimer);
    logger.info("closing listeners", { timeout_ms: config.shutdownTimeoutMs });
    served.close();
    const workersClosed = pool?.close(config.shutdownTimeoutMs) ?? Promise.resolve();
    shutdown(servers, config.shutdownTimeoutMs, () => {
      void workersClosed.then(() => {
        logger.info("stopped");
      });
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
    const main = name === "main";
    const listen = (onto: number): void => {
      // The workers listen on the main port too: the kernel spreads new connections over them.
      target.listen(
        { port: onto, host: config.host, reusePort: main && pool !== undefined },
        () => {
          const address = target.address();
          const bound = typeof address === "object" && address !== null ? address.port : port;
          const announce = (): void => {
            logger.info(main ? "listening" : `${name} listening`, {
              host: config.host,
              port: bound,
              ...extra,
              ...(main ? { workers: config.workers } : {}),
            });
          };
          if (!main || pool === undefined) {
            announce();
            return;
          }
          // "listening" means every worker listens (the port bound here, PORT=0 resolved).
          pool.start(bound).then(
            () => {
              if (state === "serving") announce();
            },
            (error: unknown) => {
              // A PDP with fewer workers than configured is not the one asked for: no start.
              reportStartupFailure(logger, error);
              close();
            },
          );
        },
      );
    };
    if (!main || pool === undefined) {
      listen(port);
      return;
    }
    // SO_REUSEPORT would also let a second PDP (an old instance left running, another
    // configuration) bind the same port and take part of the connections. A plain bind first
    // claims it: taken by anything, it fails (EADDRINUSE) as a single-threaded PDP would.
    claimPort(port, config.host).then(listen, (error: unknown) => {
      target.emit("error", error);
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
    served.drain();
    pool?.drain();
    drainTimer = setTimeout(close, delayMs);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  // SIGHUP reloads PDP_BUNDLE and PDP_DATA now; the outcome (activated, unchanged, refused with
  // the active policy kept) is a diagnostics line from the app's activation listener.
  process.on("SIGHUP", () => {
    if (state !== "serving") return;
    void served.reloadPolicy("signal");
  });
}

/** Binds `port` without SO_REUSEPORT and lets it go: the port, resolved (PORT=0), or the bind's error. */
function claimPort(port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createNetServer();
    probe.once("error", reject);
    probe.listen({ port, host }, () => {
      const address = probe.address();
      const bound = typeof address === "object" && address !== null ? address.port : port;
      probe.close(() => {
        resolve(bound);
      });
    });
  });
}
