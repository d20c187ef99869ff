import type { Server } from "node:http";
import { parentPort, workerData, type MessagePort } from "node:worker_threads";
import { buildApp, type App, type Coordinator } from "../app.ts";
import { StartupError } from "../errors.ts";
import { answerClientError } from "../http/client-error.ts";
import { limitServer } from "../http/server-limits.ts";
import type { Logger } from "../observability/logger.ts";
import { instantiateSnapshot } from "../policy/policy-loader.ts";
import { RelayLineWriter } from "./line-relay.ts";
import {
  createDiagnosticLogger,
  createListener,
  keepServingOnUnhandledRejection,
  shutdown,
} from "./serving.ts";
import type {
  CoordinatorQuestion,
  CoordinatorReply,
  FromWorker,
  ToWorker,
  WorkerStart,
} from "./worker-protocol.ts";

/**
 * A worker thread of `mcp-pdp serve` (worker-pool.ts starts it): its own app
 * and wasm instance, listening on the main thread's port with SO_REUSEPORT.
 * Its policy, readiness, /v1/status, reloads and the process's /metrics come
 * from the main thread; what it decides, it decides alone.
 */

/** How long a question to the main thread may take (a reload is the longest). */
const questionTimeoutMs = 30000;

function post(port: MessagePort, message: FromWorker): void {
  port.postMessage(message);
}

async function runWorker(port: MessagePort, start: WorkerStart): Promise<void> {
  const pending = new Map<
    number,
    { resolve: (value: unknown) => void; reject: (error: Error) => void; timer: NodeJS.Timeout }
  >();
  let nextId = 1;
  const ask = <W extends CoordinatorQuestion>(what: W): Promise<CoordinatorReply[W]> =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new Error(`the main thread did not answer ${what} within ${questionTimeoutMs} ms`));
      }, questionTimeoutMs);
      pending.set(id, {
        resolve: (value) => {
          resolve(value as CoordinatorReply[W]);
        },
        reject,
        timer,
      });
      post(port, { type: "question", id, what });
    });

  // Messages that arrive before the app is built wait for it, in order.
  let ready: { app: App; server: Server; logger: Logger } | undefined;
  const early: ToWorker[] = [];
  const relay = start.relayDecisionLines ? new RelayLineWriter(port) : undefined;
  const handle = (message: ToWorker): void => {
    if (message.type === "lines-written") {
      relay?.settle(message.id, message.error);
      return;
    }
    if (message.type === "answer") {
      const waiting = pending.get(message.id);
      pending.delete(message.id);
      if (waiting !== undefined) {
        clearTimeout(waiting.timer);
        // A failure there is this request's 500 here (the dispatcher logs it), never an answer.
        if (message.error === undefined) waiting.resolve(message.value);
        else waiting.reject(new Error(`the main thread could not answer: ${message.error}`));
      }
      return;
    }
    if (ready === undefined) {
      early.push(message);
      return;
    }
    const { app, server, logger } = ready;
    switch (message.type) {
      case "activate": {
        const { policy, source, trigger } = message;
        void app.policy
          .activateCandidate(source, () => instantiateSnapshot(policy), trigger)
          .then((outcome) => {
            if (outcome.result === "refused") {
              logger.error("worker could not instantiate the activated policy", {
                revision: policy.revision,
                reason: outcome.code,
                error: outcome.message,
              });
            }
          })
          .finally(() => {
            const { revision, digest } = app.policy.current();
            post(port, { type: "activated", revision, digest });
          });
        return;
      }
      case "metrics":
        void app.metrics.registry.getMetricsAsJSON().then((snapshot) => {
          post(port, { type: "metrics", id: message.id, snapshot });
        });
        return;
      case "drain":
        app.drain();
        return;
      case "close": {
        app.close();
        const deadline = Date.now() + message.timeoutMs;
        shutdown([server], message.timeoutMs, () => {
          // The records of the last requests may still be on their way to the destination.
          void flushed(app, deadline).then(() => {
            port.close();
            process.exit(0);
          });
        });
        return;
      }
    }
  };
  port.on("message", handle);

  const config = start.config;
  let logger: Logger;
  try {
    logger = createDiagnosticLogger(config).child({ worker: start.worker });
  } catch (error) {
    refuse(port, error);
    return;
  }
  const coordinator: Coordinator = {
    worker: start.worker,
    initial: await instantiateSnapshot(start.policy),
    initialSource: start.source,
    readiness: () => ask("readiness"),
    status: () => ask("status"),
    reload: () => ask("reload"),
    exposition: () => ask("exposition"),
  };
  let app: App;
  let server: Server;
  try {
    app = await buildApp({
      config,
      logger,
      coordinator,
      ...(relay === undefined ? {} : { decisionLines: relay }),
    });
    server = limitServer(createListener(config, app.listener), config.transport);
  } catch (error) {
    refuse(port, error);
    return;
  }
  keepServingOnUnhandledRejection(app.metrics, logger);
  server.on("clientError", answerClientError);
  server.once("error", (error) => {
    refuse(port, new StartupError("worker_failed", [`listen: ${error.message}`]));
  });
  server.listen({ port: start.port, host: config.host, reusePort: true }, () => {
    ready = { app, server, logger };
    const { revision, digest } = app.policy.current();
    post(port, { type: "listening", revision, digest });
    for (const message of early.splice(0)) handle(message);
  });
}

/** Resolves once the decision log has nothing left to write, or at `deadline`. */
async function flushed(app: App, deadline: number): Promise<void> {
  while ((app.decisionLines?.pendingBytes ?? 0) > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** The worker cannot serve: say why, then end (the main thread refuses the start or retries). */
function refuse(port: MessagePort, error: unknown): void {
  post(port, {
    type: "failed",
    code: error instanceof StartupError ? error.code : undefined,
    problems:
      error instanceof StartupError
        ? [...error.problems]
        : [error instanceof Error ? (error.stack ?? error.message) : String(error)],
  });
  port.close();
  process.exit(1);
}

if (parentPort !== null) {
  const port = parentPort;
  runWorker(port, workerData as WorkerStart).catch((error: unknown) => {
    refuse(port, error);
  });
}
