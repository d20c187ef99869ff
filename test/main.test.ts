/**
 * The real process: `node src/main.ts` as an operator runs it. Startup
 * refusals, graceful shutdown that lets an in-flight request finish; a stray
 * unhandled rejection does not end the process.
 */
import { freePort } from "./support/ports.js";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { writeFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { after, test } from "node:test";
import { repoRoot, scratchDir } from "./support/opa.js";

const scratch = scratchDir();
after(() => {
  scratch.remove();
});

interface Started {
  child: ChildProcess;
  output: () => string;
  exit: Promise<number | null>;
}

function startMain(env: Record<string, string>, nodeArgs: string[] = []): Started {
  const child = spawn(
    process.execPath,
    ["--import", "tsx", ...nodeArgs, join(repoRoot, "src", "main.ts")],
    {
      cwd: repoRoot,
      env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const exit = once(child, "exit").then(([code]) => code as number | null);
  return { child, output: () => output, exit };
}

async function waitReady(url: string, started: Started): Promise<void> {
  const deadline = Date.now() + 20000;
  while (Date.now() < deadline) {
    try {
      const response = await fetch(`${url}/ready`);
      if (response.status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  started.child.kill("SIGKILL");
  assert.fail(`the PDP did not become ready:\n${started.output()}`);
}

test("bad configuration: exit code 1 and every problem named in one log line", async () => {
  const started = startMain({ PORT: "99999", LOG_LEVEL: "chatty" });
  assert.equal(await started.exit, 1);
  const line = JSON.parse(started.output().trim().split("\n").pop() ?? "{}") as {
    code: string;
    problems: string[];
  };
  assert.equal(line.code, "config_invalid");
  assert.equal(line.problems.length, 2);
  assert.match(
    line.problems.join(" "),
    /PORT=99999.*LOG_LEVEL=chatty|LOG_LEVEL=chatty.*PORT=99999/,
  );
});

test("bad operator data: the PDP refuses to start and names the key", async () => {
  const data = join(scratch.dir, "typo.yaml");
  writeFileSync(data, "unknown_tool: destrutive\n");
  const started = startMain({ PORT: String(await freePort()), PDP_DATA: data });
  assert.equal(await started.exit, 1);
  assert.match(started.output(), /policy_config_invalid/);
  assert.match(started.output(), /unknown_tool/);
});

test("SIGTERM drains: an in-flight request completes, then the process exits 0", async () => {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const started = startMain({ PORT: String(port) });
  await waitReady(url, started);

  const body = JSON.stringify({
    subject: { type: "user", id: "alice", properties: { scopes: ["mcp:read"] } },
    action: { name: "ping" },
    resource: { type: "mcp_server", id: "files" },
  });
  const socket = connect(port, "127.0.0.1");
  await once(socket, "connect");
  let reply = "";
  socket.on("data", (chunk: Buffer) => (reply += chunk.toString()));
  // Send the headers and half the body: the request is now in flight.
  socket.write(
    `POST /access/v1/evaluation HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n`,
  );
  const half = Math.floor(body.length / 2);
  socket.write(body.slice(0, half));
  await new Promise((resolve) => setTimeout(resolve, 200));

  started.child.kill("SIGTERM");
  await new Promise((resolve) => setTimeout(resolve, 300));
  // New connections are refused while the in-flight one is still served.
  await assert.rejects(fetch(`${url}/health`));
  socket.end(body.slice(half));
  await once(socket, "close");

  assert.match(reply, /^HTTP\/1\.1 200/);
  assert.match(reply, /"decision":true/);
  assert.equal(await started.exit, 0);
  assert.match(started.output(), /"message":"draining"/);
  assert.match(started.output(), /"message":"stopped"/);
});

async function waitLogged(started: Started, message: string, timeoutMs = 10000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (started.output().includes(`"message":"${message}"`)) return Date.now();
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  started.child.kill("SIGKILL");
  return assert.fail(`no "${message}" log line:\n${started.output()}`);
}

test("an unhandled rejection is logged and counted; the process keeps serving", async () => {
  // A stray rejection, on demand: what a bug outside any request path would produce.
  const inject = join(scratch.dir, "stray-rejection.mjs");
  writeFileSync(
    inject,
    'process.on("SIGUSR2", () => { Promise.reject(new Error("stray rejection for the test")); });\n',
  );
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const started = startMain({ PORT: String(port) }, ["--import", inject]);
  await waitReady(url, started);
  started.child.kill("SIGUSR2");
  await waitLogged(
    started,
    "UNHANDLED REJECTION (a bug): logged and counted, the PDP keeps serving",
  );
  assert.match(started.output(), /stray rejection for the test/);
  assert.equal((await fetch(`${url}/ready`)).status, 200);
  const metrics = await (await fetch(`${url}/metrics`)).text();
  assert.match(metrics, /^mcp_pdp_unhandled_rejections_total 1$/m);
  started.child.kill("SIGTERM");
  assert.equal(await started.exit, 0);
});
