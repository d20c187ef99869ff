import type { AddressInfo } from "node:net";
import { createServer, type Server } from "node:http";
import { Writable } from "node:stream";
import { buildApp, type App } from "../../src/app.ts";
import { loadConfig } from "../../src/config/index.ts";
import { limitServer, serverOptions } from "../../src/http/server-limits.ts";
import type { Clock } from "../../src/decision/decision-engine.ts";
import { createLogger } from "../../src/observability/logger.ts";
import { serializeRecord } from "../../src/observability/masking.ts";

export interface RunningPdp {
  /** Base URL on loopback, e.g. http://127.0.0.1:40123 */
  url: string;
  app: App;
  /** Every diagnostic log line written so far, parsed. */
  logs: Record<string, unknown>[];
  /** Every decision record written so far. */
  decisions: Record<string, unknown>[];
  close: () => Promise<void>;
}

export interface StartOptions {
  /** Environment variables as main.ts would read them (HOST/PORT are set by the helper). */
  env?: Record<string, string>;
  clock?: Clock;
}

/** Starts the PDP in-process on an ephemeral loopback port, as main.ts would, with logs captured. */
export async function startPdp(options: StartOptions = {}): Promise<RunningPdp> {
  const config = loadConfig({ ...options.env, HOST: "127.0.0.1", PORT: "0" });
  const logs: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString("utf8").split("\n")) {
        if (line.trim() !== "") logs.push(JSON.parse(line) as Record<string, unknown>);
      }
      callback();
    },
  });
  const logger = createLogger({ level: "debug", stream });
  const decisions: Record<string, unknown>[] = [];
  const app = await buildApp({
    config,
    logger,
    // Records are captured in memory (as JSON text and back, as a log line would be written).
    decisionLog: {
      record: (entry) =>
        decisions.push(JSON.parse(serializeRecord(entry)) as Record<string, unknown>),
    },
    ...(options.clock ? { clock: options.clock } : {}),
  });
  // The listener's server as serve builds it: timeouts, the connection cap, Expect handling.
  const server: Server = limitServer(
    createServer(serverOptions(config.transport), app.listener),
    config.transport,
  );
  await new Promise<void>((resolve) => {
    server.listen(0, "127.0.0.1", resolve);
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    app,
    logs,
    decisions,
    close: () =>
      new Promise<void>((resolve, reject) => {
        app.close();
        server.closeAllConnections();
        server.close((error) => {
          if (error) reject(error);
          else resolve();
        });
      }),
  };
}

/** POSTs a JSON body (a string is sent as is) and returns status, headers and parsed body. */
export async function postJson(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Headers; body: unknown }> {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" || body instanceof Uint8Array ? body : JSON.stringify(body),
  });
  const text = await response.text();
  return {
    status: response.status,
    headers: response.headers,
    body: text === "" ? undefined : JSON.parse(text),
  };
}
