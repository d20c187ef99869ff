/**
 * Attacks on server.max_requests_per_connection (issue 11, item 2) that found
 * a fault, now fixed (the PDP counts and closes itself). Node's maxRequestsPerSocket, used first, writes
 * `Connection: close` on the Nth answer but keeps the socket open; every
 * later request on it gets a bare 503 (no body, no request id, in no metric
 * and no log) and each 503 keeps the connection alive, past the keep-alive
 * timeout. HTTP/1.0 keep-alive connections are not counted at all.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, test } from "node:test";
import { repoRoot } from "../support/opa.ts";
import { freePort } from "../support/ports.ts";
import { startMain, waitForLog, type MainProcess } from "../support/main-process.ts";

const evaluation = JSON.stringify({
  subject: { type: "user", id: "u", properties: { scope: "mcp:read" } },
  action: { name: "tools/call" },
  resource: { type: "tool", id: "files/read_file" },
  context: { device: { trust: "managed" } },
});

function request(version: "1.0" | "1.1"): string {
  return [
    `POST /access/v1/evaluation HTTP/${version}`,
    "Host: 127.0.0.1",
    "Content-Type: application/json",
    ...(version === "1.0" ? ["Connection: keep-alive"] : []),
    `Content-Length: ${Buffer.byteLength(evaluation)}`,
    "",
    evaluation,
  ].join("\r\n");
}

/** One connection; `send` writes a request and waits for one whole answer or the close. */
async function connection(port: number): Promise<{
  socket: Socket;
  closed: () => boolean;
  send: (version: "1.0" | "1.1") => Promise<{ status: number; connection: string } | "closed">;
}> {
  const socket = connect(port, "127.0.0.1");
  await once(socket, "connect");
  const state = { received: "", closed: false };
  // Read through a function: the callbacks above change it between awaits.
  const isClosed = (): boolean => state.closed;
  socket.on("data", (chunk: Buffer) => (state.received += chunk.toString("latin1")));
  socket.on("close", () => (state.closed = true));
  socket.on("error", () => (state.closed = true));
  const send = async (version: "1.0" | "1.1") => {
    if (isClosed()) return "closed" as const;
    const from = state.received.length;
    socket.write(request(version));
    const deadline = Date.now() + 3000;
    while (Date.now() < deadline) {
      const answer = state.received.slice(from);
      const end = answer.indexOf("\r\n\r\n");
      if (end >= 0) {
        const length = /\r\ncontent-length: (\d+)/i.exec(answer);
        const chunkedDone =
          /transfer-encoding: chunked/i.test(answer) && answer.endsWith("0\r\n\r\n");
        if ((length !== null && answer.length >= end + 4 + Number(length[1])) || chunkedDone) {
          return {
            status: Number(/^HTTP\/1\.\d (\d+)/.exec(answer)?.[1]),
            connection: /\r\nconnection: ([a-z-]+)/i.exec(answer)?.[1]?.toLowerCase() ?? "",
          };
        }
      }
      if (isClosed()) return "closed" as const;
      await sleep(20);
    }
    assert.fail(`no answer within 3 s: ${state.received.slice(from)}`);
  };
  return { socket, closed: isClosed, send };
}

describe("PDP_MAX_REQUESTS_PER_CONNECTION=2, PDP_WORKERS=2, the real process", () => {
  let pdp: MainProcess;
  let port = 0;
  const open: Socket[] = [];

  before(async () => {
    port = await freePort();
    pdp = startMain({
      PORT: String(port),
      PDP_WORKERS: "2",
      PDP_MAX_REQUESTS_PER_CONNECTION: "2",
      PDP_KEEP_ALIVE_TIMEOUT_MS: "5000",
      PDP_DATA: join(repoRoot, "examples", "operator-data.yaml"),
      PDP_DECISION_LOG: "off",
      PDP_DRAIN_DELAY_MS: "0",
    });
    await waitForLog(pdp, "listening");
  });
  after(async () => {
    for (const socket of open) socket.destroy();
    await pdp.kill();
  });

  test("past the limit a client that keeps sending gets no answer it cannot see the PDP give (no bare 503), and the PDP ends the connection", async () => {
    const client = await connection(port);
    open.push(client.socket);
    const answers = [];
    // A client that ignores `Connection: close`, sending one request every second.
    for (let i = 0; i < 6; i++) {
      answers.push(await client.send("1.1"));
      await sleep(100);
    }
    assert.deepEqual(answers.slice(0, 2), [
      { status: 200, connection: "keep-alive" },
      { status: 200, connection: "close" },
    ]);
    assert.deepEqual(
      answers.slice(2),
      ["closed", "closed", "closed", "closed"],
      "after its Connection: close answer the PDP should end the connection, not answer 503",
    );
  });

  test("an HTTP/1.0 keep-alive connection is limited too", async () => {
    const client = await connection(port);
    open.push(client.socket);
    const answers = [];
    for (let i = 0; i < 4; i++) answers.push(await client.send("1.0"));
    assert.deepEqual(answers.slice(0, 2), [
      { status: 200, connection: "keep-alive" },
      { status: 200, connection: "close" },
    ]);
  });
});
