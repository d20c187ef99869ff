/**
 * The real process: `node src/main.ts` (`mcp-pdp serve`) as an operator runs
 * it. Startup refusals, from the environment or the command line; signals:
 * SIGTERM drains (readiness off for the drain delay, then in-flight requests
 * finish), SIGINT without the delay, SIGHUP reloads the policy files; a stray
 * unhandled rejection does not end the process.
 */
import { freePort } from "./support/ports.ts";
import assert from "node:assert/strict";
import { once } from "node:events";
import { writeFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { after, test } from "node:test";
import { startMain, type MainProcess } from "./support/main-process.ts";
import { scratchDir } from "./support/opa.ts";

const scratch = scratchDir();
after(() => {
  scratch.remove();
});

type Started = MainProcess;

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

test("serve --data and --bundle stand in for PDP_DATA and PDP_BUNDLE: the file named on the command line is the one checked", async () => {
  const data = join(scratch.dir, "typo-on-the-command-line.yaml");
  writeFileSync(data, "unknown_tool: destrutive\n");
  const refused = startMain({ PORT: String(await freePort()) }, [], ["serve", "--data", data]);
  assert.equal(await refused.exit, 1);
  assert.match(refused.output(), /policy_config_invalid/);
  assert.match(refused.output(), /typo-on-the-command-line\.yaml/);

  const missing = join(scratch.dir, "no-such-bundle.tar.gz");
  const absent = startMain({ PORT: String(await freePort()) }, [], ["serve", "--bundle", missing]);
  assert.equal(await absent.exit, 1);
  assert.match(absent.output(), /no-such-bundle\.tar\.gz/);
});

/** Opens a request and sends its headers and half its body: it is in flight until `finish()`. */
async function inFlight(port: number) {
  const body = JSON.stringify({
    subject: { type: "user", id: "alice", properties: { scopes: ["mcp:read"] } },
    action: { name: "ping" },
    resource: { type: "mcp_server", id: "files" },
  });
  const socket = connect(port, "127.0.0.1");
  await once(socket, "connect");
  let reply = "";
  socket.on("data", (chunk: Buffer) => (reply += chunk.toString()));
  socket.write(
    `POST /access/v1/evaluation HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n`,
  );
  const half = Math.floor(body.length / 2);
  socket.write(body.slice(0, half));
  await new Promise((resolve) => setTimeout(resolve, 200));
  return {
    finish: async () => {
      socket.end(body.slice(half));
      await once(socket, "close");
      return reply;
    },
  };
}

async function waitLogged(started: Started, message: string, timeoutMs = 10000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (started.output().includes(`"message":"${message}"`)) return Date.now();
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  started.child.kill("SIGKILL");
  return assert.fail(`no "${message}" log line:\n${started.output()}`);
}

const decision = JSON.stringify({
  subject: { type: "user", id: "alice", properties: { scopes: ["mcp:read"] } },
  action: { name: "ping" },
  resource: { type: "mcp_server", id: "files" },
});

test("SIGTERM: /ready answers 503 for the drain delay while decisions are still served; then the listener closes, the in-flight request completes, exit 0", async () => {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const started = startMain({ PORT: String(port), PDP_DRAIN_DELAY_MS: "1500" });
  await waitReady(url, started);
  const request = await inFlight(port);

  started.child.kill("SIGTERM");
  const signalled = await waitLogged(started, "draining");
  // Readiness is off at once, everything else still served (each answer closing its connection).
  const ready = await fetch(`${url}/ready`);
  assert.equal(ready.status, 503);
  assert.equal(((await ready.json()) as { code: string }).code, "not_ready");
  assert.equal((await fetch(`${url}/health`)).status, 200);
  const served = await fetch(`${url}/access/v1/evaluation`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: decision,
  });
  assert.equal(served.status, 200);
  assert.equal(served.headers.get("connection"), "close");
  assert.equal(((await served.json()) as { decision: boolean }).decision, true);

  // Then the listener stops accepting: not before the delay.
  const closing = await waitLogged(started, "closing listeners");
  assert.ok(closing - signalled >= 1300, `closed ${closing - signalled} ms after SIGTERM`);
  await assert.rejects(fetch(`${url}/health`));
  const reply = await request.finish();
  assert.match(reply, /^HTTP\/1\.1 200/);
  assert.match(reply, /"decision":true/);
  assert.equal(await started.exit, 0);
  assert.match(started.output(), /"message":"stopped"/);
});

test("a second SIGTERM ends the drain delay; SIGINT has none", async () => {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const started = startMain({ PORT: String(port), PDP_DRAIN_DELAY_MS: "60000" });
  await waitReady(url, started);
  const sent = Date.now();
  started.child.kill("SIGTERM");
  await waitLogged(started, "draining");
  // In the delay: still listening, not ready.
  assert.equal((await fetch(`${url}/ready`)).status, 503);
  started.child.kill("SIGTERM");
  assert.equal(await started.exit, 0);
  assert.ok(Date.now() - sent < 10000, `exited ${Date.now() - sent} ms after SIGTERM`);

  const interrupted = startMain({ PORT: String(port), PDP_DRAIN_DELAY_MS: "60000" });
  await waitReady(url, interrupted);
  const at = Date.now();
  interrupted.child.kill("SIGINT");
  assert.equal(await interrupted.exit, 0);
  assert.ok(Date.now() - at < 10000, `exited ${Date.now() - at} ms after SIGINT`);
  assert.match(interrupted.output(), /"drain_delay_ms":0/);
});

test("SIGHUP reloads PDP_DATA: a new revision, then unchanged; the process keeps serving", async () => {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const data = join(scratch.dir, "sighup.yaml");
  writeFileSync(data, "unknown_tool: read\n");
  // No watch: only the signal can make the PDP read the file again.
  const started = startMain({
    PORT: String(port),
    PDP_DRAIN_DELAY_MS: "0",
    PDP_DATA: data,
    PDP_POLICY_WATCH: "false",
  });
  await waitReady(url, started);
  const revisionNow = async () =>
    ((await (await fetch(`${url}/ready`)).json()) as { revision: string }).revision;
  const before = await revisionNow();
  writeFileSync(data, "unknown_tool: deny\n");
  started.child.kill("SIGHUP");
  await waitLogged(started, "policy activated");
  const after = await revisionNow();
  assert.notEqual(after, before);
  const activated = started.logLines().find((line) => line.message === "policy activated");
  assert.deepEqual(
    { trigger: activated?.trigger, revision: activated?.revision, previous: activated?.previous },
    { trigger: "signal", revision: after, previous: before },
  );
  started.child.kill("SIGHUP");
  await waitLogged(started, "policy unchanged");
  assert.equal(await revisionNow(), after);
  assert.equal(started.child.exitCode, null, started.output());
  assert.equal(started.child.signalCode, null, started.output());
  started.child.kill("SIGTERM");
  assert.equal(await started.exit, 0);
});

test("an unhandled rejection is logged and counted; the process keeps serving", async () => {
  // A stray rejection, on demand: what a bug outside any request path would produce.
  const inject = join(scratch.dir, "stray-rejection.mjs");
  writeFileSync(
    inject,
    'process.on("SIGUSR2", () => { Promise.reject(new Error("stray rejection for the test")); });\n',
  );
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const started = startMain({ PORT: String(port), PDP_DRAIN_DELAY_MS: "0" }, ["--import", inject]);
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
