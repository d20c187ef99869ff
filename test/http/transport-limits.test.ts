/**
 * Bounded work per connection, on the real process and every listener it
 * opens (main, metrics, probes): slow headers and slow bodies are cut off
 * with a 408 in the PDP's error shape, idle keep-alive connections closed,
 * connections beyond PDP_MAX_CONNECTIONS closed at once, malformed HTTP
 * answered 400 and closed. The settings are validated at startup.
 */
import assert from "node:assert/strict";
import { connect, type Socket } from "node:net";
import { availableParallelism } from "node:os";
import { once } from "node:events";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { loadConfig } from "../../src/config/index.ts";
import { StartupError } from "../../src/errors.ts";
import { repoRoot } from "../support/opa.ts";
import { freePort } from "../support/ports.ts";
import { startMain, waitForLog, waitUntil, type MainProcess } from "../support/main-process.ts";
import { codeOf, head, rawExchange } from "./raw-http.ts";

/** A path each listener answers 200 without credentials. */
const usablePath = { main: "/health", metrics: "/metrics", probes: "/health" };

describe("timeouts and the connection cap, on the real process", () => {
  let pdp: MainProcess;
  const ports = { main: 0, metrics: 0, probes: 0 };
  const open: Socket[] = [];

  before(async () => {
    ports.main = await freePort();
    ports.metrics = await freePort();
    ports.probes = await freePort();
    pdp = startMain({
      PORT: String(ports.main),
      PDP_METRICS_PORT: String(ports.metrics),
      PDP_PROBE_PORT: String(ports.probes),
      PDP_DATA: join(repoRoot, "examples", "operator-data.yaml"),
      PDP_DECISION_LOG: "off",
      PDP_HEADERS_TIMEOUT_MS: "500",
      PDP_REQUEST_TIMEOUT_MS: "1000",
      PDP_KEEP_ALIVE_TIMEOUT_MS: "300",
      PDP_MAX_CONNECTIONS: "3",
      PDP_MAX_REQUESTS_PER_CONNECTION: "3",
      // The cap is per listener, and each worker has its own on the main port: one worker here.
      PDP_WORKERS: "1",
      PDP_DRAIN_DELAY_MS: "0",
    });
    await waitForLog(pdp, "listening");
    await waitForLog(pdp, "probes listening");
    await waitForLog(pdp, "metrics listening");
  });
  after(async () => {
    for (const socket of open) socket.destroy();
    await pdp.kill();
  });

  for (const listener of ["main", "metrics", "probes"] as const) {
    test(`${listener}: headers that never end → 408 request_timeout and closed, within the headers timeout`, async () => {
      const answer = await rawExchange(ports[listener], {
        send: "GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ",
        waitMs: 5000,
      });
      assert.ok(answer.closedByServer, `${listener}: still open after ${answer.elapsedMs} ms`);
      assert.equal(answer.status, 408);
      assert.deepEqual(JSON.parse(answer.body), {
        code: "request_timeout",
        message:
          "the request did not arrive in time (PDP_HEADERS_TIMEOUT_MS, PDP_REQUEST_TIMEOUT_MS)",
      });
      // 500 ms, checked every 50 ms; node's own defaults would hold it for 60 s.
      assert.ok(answer.elapsedMs >= 400 && answer.elapsedMs < 2500, `${answer.elapsedMs} ms`);
    });
  }

  test("a body that never ends (authenticated, or with authentication off) → 408 within the request timeout", async () => {
    const answer = await rawExchange(ports.main, {
      send: `${head("POST", "/access/v1/evaluation", { "content-type": "application/json" }, 100)}{"subject":`,
      waitMs: 5000,
    });
    assert.ok(answer.closedByServer, `still open after ${answer.elapsedMs} ms`);
    assert.equal(answer.status, 408);
    assert.equal(codeOf(answer.body), "request_timeout");
    assert.ok(answer.elapsedMs >= 900 && answer.elapsedMs < 3000, `${answer.elapsedMs} ms`);
  });

  test("an idle keep-alive connection is closed after the keep-alive timeout", async () => {
    const answer = await rawExchange(ports.main, {
      send: head("GET", "/health", {}),
      waitMs: 5000,
    });
    assert.equal(answer.status, 200);
    assert.ok(answer.closedByServer, `still open after ${answer.elapsedMs} ms`);
    const idle = answer.elapsedMs - (answer.firstByteMs ?? 0);
    assert.ok(idle >= 200 && idle < 2500, `closed ${idle} ms after the answer`);
  });

  test("malformed HTTP → 400 invalid_request in the PDP's shape, closed", async () => {
    const answer = await rawExchange(ports.main, {
      send: "GET /health HTTP/1.1\r\nHost: x\r\nBad Header Name: x\r\n\r\n",
      waitMs: 5000,
    });
    assert.equal(answer.status, 400);
    assert.equal(codeOf(answer.body), "invalid_request");
    assert.ok(answer.closedByServer);
  });

  test("a keep-alive connection carries PDP_MAX_REQUESTS_PER_CONNECTION requests, the last answered Connection: close", async () => {
    // One raw connection (node's Agent would not reuse it: the 300 ms keep-alive is announced
    // as timeout=0), requests sent one after another, each answer read whole.
    const socket = connect(ports.main, "127.0.0.1");
    open.push(socket);
    await once(socket, "connect");
    let received = "";
    socket.on("data", (chunk: Buffer) => (received += chunk.toString("latin1")));
    const closed = once(socket, "close");
    const connections: string[] = [];
    for (let i = 0; i < 3; i++) {
      const from = received.length;
      socket.write(head("GET", "/health", {}));
      await waitUntil(
        `answer ${i + 1}`,
        () => {
          const answer = received.slice(from);
          const end = answer.indexOf("\r\n\r\n");
          const length = /\r\ncontent-length: (\d+)/i.exec(answer);
          return end >= 0 && length !== null && answer.length >= end + 4 + Number(length[1]);
        },
        3000,
        pdp,
      );
      connections.push(/\r\nconnection: ([a-z-]+)/i.exec(received.slice(from))?.[1] ?? "");
    }
    assert.deepEqual(connections, ["keep-alive", "keep-alive", "close"]);
    // And the PDP ends the connection: the client reconnects, and is placed anew.
    await closed;
  });

  for (const listener of ["main", "probes"] as const) {
    test(`${listener}: connections beyond PDP_MAX_CONNECTIONS are closed at once; a freed slot is usable again`, async () => {
      const held: Socket[] = [];
      for (let i = 0; i < 3; i += 1) {
        const socket = connect(ports[listener], "127.0.0.1");
        await once(socket, "connect");
        held.push(socket);
        open.push(socket);
      }
      // Let the server register all three before the fourth arrives.
      await new Promise((resolve) => setTimeout(resolve, 100));
      const refused = await rawExchange(ports[listener], {
        send: head("GET", "/health", {}),
        waitMs: 3000,
      });
      assert.equal(refused.status, 0, "no answer beyond the cap");
      assert.ok(refused.closedByServer && refused.elapsedMs < 1000, `${refused.elapsedMs} ms`);
      for (const socket of held) socket.destroy();
      await waitUntil(
        "a slot to free up",
        async () =>
          (
            await rawExchange(ports[listener], {
              send: head("GET", usablePath[listener], { connection: "close" }),
              waitMs: 2000,
            })
          ).status === 200,
        5000,
        pdp,
      );
    });
  }
});

describe("transport settings are validated at startup", () => {
  function problems(env: Record<string, string>): string[] {
    try {
      loadConfig(env);
    } catch (error) {
      if (error instanceof StartupError) return [...error.problems];
      throw error;
    }
    return [];
  }

  test("defaults an operator would pick", () => {
    const config = loadConfig({});
    assert.deepEqual(config.transport, {
      headersTimeoutMs: 10000,
      requestTimeoutMs: 30000,
      keepAliveTimeoutMs: 5000,
      maxConnections: 4096,
      maxRequestsPerConnection: 1000,
      probePort: undefined,
      drainDelayMs: 5000,
    });
  });

  test("each setting is read, and nothing can be switched off", () => {
    const config = loadConfig({
      PDP_HEADERS_TIMEOUT_MS: "2000",
      PDP_REQUEST_TIMEOUT_MS: "4000",
      PDP_KEEP_ALIVE_TIMEOUT_MS: "700",
      PDP_MAX_CONNECTIONS: "10",
      PDP_MAX_REQUESTS_PER_CONNECTION: "50",
      PDP_PROBE_PORT: "8181",
      PDP_DRAIN_DELAY_MS: "0",
    });
    assert.deepEqual(config.transport, {
      headersTimeoutMs: 2000,
      requestTimeoutMs: 4000,
      keepAliveTimeoutMs: 700,
      maxConnections: 10,
      maxRequestsPerConnection: 50,
      probePort: 8181,
      drainDelayMs: 0,
    });
    for (const name of [
      "PDP_HEADERS_TIMEOUT_MS",
      "PDP_REQUEST_TIMEOUT_MS",
      "PDP_KEEP_ALIVE_TIMEOUT_MS",
      "PDP_MAX_CONNECTIONS",
    ]) {
      for (const value of ["0", "-1", "abc", "1e9"]) {
        const found = problems({ [name]: value });
        assert.ok(
          found.some((p) => p.startsWith(`${name}=${value}:`)),
          `${name}=${value}: ${found.join("; ")}`,
        );
      }
    }
  });

  test("PDP_WORKERS and PDP_MAX_REQUESTS_PER_CONNECTION: read, defaulted, and refused outside their range", () => {
    assert.equal(loadConfig({}).workers, availableParallelism());
    assert.equal(loadConfig({ PDP_WORKERS: "3" }).workers, 3);
    assert.equal(
      loadConfig({ PDP_MAX_REQUESTS_PER_CONNECTION: "0" }).transport.maxRequestsPerConnection,
      0,
    );
    for (const [name, values] of [
      ["PDP_WORKERS", ["0", "-1", "257", "1.5", "abc"]],
      ["PDP_MAX_REQUESTS_PER_CONNECTION", ["-1", "1.5", "abc", "1000001"]],
    ] as const) {
      for (const value of values) {
        const found = problems({ [name]: value });
        assert.ok(
          found.some((p) => p.startsWith(`${name}=${value}:`)),
          `${name}=${value}: ${found.join("; ")}`,
        );
      }
    }
  });

  test("a headers timeout above the request timeout, a probe port shared with another listener: refused", () => {
    assert.ok(
      problems({
        PDP_HEADERS_TIMEOUT_MS: "20000",
        PDP_REQUEST_TIMEOUT_MS: "10000",
      }).some((p) =>
        p.startsWith("PDP_HEADERS_TIMEOUT_MS=20000: must not exceed PDP_REQUEST_TIMEOUT_MS"),
      ),
    );
    assert.ok(
      problems({ PORT: "9000", PDP_PROBE_PORT: "9000" }).some((p) =>
        p.startsWith("PDP_PROBE_PORT=9000: is also PORT"),
      ),
    );
    assert.ok(
      problems({ PDP_METRICS_PORT: "9001", PDP_PROBE_PORT: "9001" }).some((p) =>
        p.startsWith("PDP_PROBE_PORT=9001: is also PDP_METRICS_PORT"),
      ),
    );
  });
});
