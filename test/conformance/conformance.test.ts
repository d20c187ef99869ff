/**
 * The MCP conformance suite's server scenarios (`@modelcontextprotocol/conformance`,
 * every suite), run three times against the same scenario server (official
 * 1.x SDK, test/conformance/scenario-server.ts), every component real and on
 * 127.0.0.1:
 *   a. the server as is;
 *   b. the server behind the PEP library (createMcpAuthorization), asking a
 *      real PDP process with an allow-all policy (compiled by the real opa);
 *   c. the server behind a real Traefik with ForwardAuth + forwardBody to a
 *      second such PDP (mTLS, `callers` and `forward_auth` as the e2e tests
 *      run them).
 * Enforcement that allows must not change a single result: every scenario's
 * checks (id, status, error message) are the same in b and c as in a, and a
 * fails none. Both PDPs must really have decided (their decision logs).
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { createMcpAuthorization } from "../../src/pep/index.ts";
import { generateTestPki, type TestPki } from "../support/certs.ts";
import { waitUntil } from "../support/main-process.ts";
import { repoRoot, scratchDir } from "../support/opa.ts";
import {
  forwardAuthSettings,
  mtlsCallers,
  proxyCertificateName,
} from "../e2e/support/pdp-process.ts";
import { freePort, spawnManaged, type Managed } from "../e2e/support/processes.ts";
import { traefikBinary, traefikDynamic, traefikStatic } from "../e2e/support/proxies.ts";
import { buildAllowAllBundle, startAllowAllPdp, type AllowAllPdp } from "./allow-all-pdp.ts";
import {
  listServerScenarios,
  resultOf,
  runServerScenarios,
  type ConformanceRun,
} from "./conformance-runner.ts";
import { resultsTable } from "./results-table.ts";
import { startScenarioServer, type RunningScenarioServer } from "./scenario-server.ts";

/** The server's name in the PDP's `servers:` and in `/forward-auth/<server>`. */
const serverName = "conformance";
/** One whole run of the suite (32 scenarios, about 3 s on an idle machine). */
const runTimeoutMs = 60_000;

const scratch = scratchDir();
const apiKey = randomBytes(24).toString("base64url");
const pepErrors: Error[] = [];
const stopping: (() => Promise<void>)[] = [];

let pki: TestPki | undefined;
let direct: RunningScenarioServer;
let guarded: RunningScenarioServer;
let libraryPdp: AllowAllPdp;
let proxyPdp: AllowAllPdp;
let traefik: Managed;
let proxiedUrl: string;

function dir(name: string): string {
  const path = join(scratch.dir, name);
  mkdirSync(path, { recursive: true });
  return path;
}

/** Polls until Traefik relays the server's own answer to a GET without a session (400). */
async function waitForTraefik(url: string, managed: Managed, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exitCode: number | null | undefined;
  void managed.exited.then((code) => {
    exitCode = code;
  });
  let last = "no answer";
  while (Date.now() < deadline && exitCode === undefined) {
    try {
      const response = await fetch(url, {
        headers: { accept: "text/event-stream" },
        signal: AbortSignal.timeout(2000),
      });
      const body = await response.text();
      if (response.status === 400 && body.includes("no valid session ID")) return;
      last = `status ${response.status}: ${body.slice(0, 200)}`;
    } catch (error) {
      last = error instanceof Error ? error.message : String(error);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`traefik not relaying at ${url} (${last}):\n${managed.output()}`);
}

before(async () => {
  const bundle = buildAllowAllBundle(dir("bundle"));
  const [libraryPort, proxyPdpPort, traefikPort] = [
    await freePort(),
    await freePort(),
    await freePort(),
  ];
  const libraryPdpUrl = `http://127.0.0.1:${libraryPort}`;
  proxiedUrl = `http://127.0.0.1:${traefikPort}/mcp`;

  direct = await startScenarioServer();
  stopping.push(direct.close);
  guarded = await startScenarioServer({
    pep: (origin) =>
      createMcpAuthorization({
        pdpUrl: libraryPdpUrl,
        apiKey,
        server: serverName,
        resourceMetadataUrl: `${origin}/.well-known/oauth-protected-resource/mcp`,
        onError: (error) => {
          pepErrors.push(error);
        },
      }),
  });
  stopping.push(guarded.close);

  pki = generateTestPki();
  const client = pki.issue("proxy", { commonName: proxyCertificateName, usage: "client" });
  const pdpTls = { ca: pki.ca.cert, cert: client.cert, key: client.key };
  // Side by side; whichever started is stopped at the end even when the other did not.
  const pdps = await Promise.allSettled([
    startAllowAllPdp({
      dir: dir("library-pdp"),
      port: libraryPort,
      bundle,
      config: {
        servers: { [serverName]: { resource: guarded.url } },
        callers: [
          {
            name: "conformance-pep",
            api_key_sha256: [createHash("sha256").update(apiKey).digest("hex")],
            permissions: ["authzen"],
          },
        ],
      },
    }),
    startAllowAllPdp({
      dir: dir("proxy-pdp"),
      port: proxyPdpPort,
      bundle,
      config: {
        servers: { [serverName]: { resource: proxiedUrl } },
        ...mtlsCallers({
          subject: proxyCertificateName,
          certFile: pki.server.certFile,
          keyFile: pki.server.keyFile,
          clientCaFile: pki.ca.certFile,
        }),
        forward_auth: forwardAuthSettings,
      },
      tls: pdpTls,
    }),
  ]);
  for (const pdp of pdps) {
    if (pdp.status === "fulfilled") stopping.push(() => pdp.value.process.kill());
  }
  const [library, proxy] = pdps;
  if (library.status !== "fulfilled") throw library.reason;
  if (proxy.status !== "fulfilled") throw proxy.reason;
  [libraryPdp, proxyPdp] = [library.value, proxy.value];

  const traefikDir = dir("traefik");
  const dynamic = join(traefikDir, "dynamic.yml");
  writeFileSync(
    dynamic,
    traefikDynamic({
      pdp: `127.0.0.1:${proxyPdpPort}`,
      tls: { ca: pki.ca.certFile, cert: client.certFile, key: client.keyFile },
      sites: [{ server: serverName, mcp: new URL(direct.origin).host, entryPoint: "conformance" }],
    }),
  );
  const staticFile = join(traefikDir, "traefik.yml");
  writeFileSync(staticFile, traefikStatic({ conformance: `127.0.0.1:${traefikPort}` }, dynamic));
  traefik = spawnManaged("traefik", traefikBinary(), [`--configFile=${staticFile}`], {
    cwd: traefikDir,
    env: { PATH: process.env.PATH ?? "", HOME: traefikDir },
  });
  stopping.push(() => traefik.stop());
  await waitForTraefik(proxiedUrl, traefik);
});

after(async () => {
  for (const stop of stopping.reverse()) await stop();
  pki?.remove();
  scratch.remove();
});

/** Each scenario's results, without what differs between runs (see resultOf). */
function resultsOf(run: ConformanceRun): Record<string, ReturnType<typeof resultOf>[]> {
  const results: Record<string, ReturnType<typeof resultOf>[]> = {};
  for (const [scenario, checks] of [...run.scenarios].sort(([a], [b]) => a.localeCompare(b))) {
    results[scenario] = checks.map(resultOf);
  }
  return results;
}

test("every server scenario gives the same results with and without enforcement", async () => {
  const known = await listServerScenarios();
  assert.ok(known.length >= 30, `the suite lists its server scenarios: ${known.join(", ")}`);

  // One after the other: the three setups share two cores with everything else.
  const runs = {
    direct: await runServerScenarios(direct.url, dir("results-direct"), runTimeoutMs),
    library: await runServerScenarios(guarded.url, dir("results-library"), runTimeoutMs),
    proxy: await runServerScenarios(proxiedUrl, dir("results-proxy"), runTimeoutMs),
  };

  for (const [setup, run] of Object.entries(runs)) {
    assert.deepEqual(
      [...run.scenarios.keys()].sort(),
      [...known].sort(),
      `${setup}: every scenario the suite lists ran\n${run.output}`,
    );
  }

  // a: the server fails none of what it implements (warnings and notes are the suite's advice).
  const failed = [...runs.direct.scenarios].flatMap(([scenario, checks]) =>
    checks.filter((check) => check.status === "FAILURE").map((check) => ({ scenario, check })),
  );
  assert.deepEqual(failed, [], "the scenario server passes every scenario directly");
  assert.equal(runs.direct.exitCode, 0, runs.direct.output);
  for (const [scenario, checks] of runs.direct.scenarios) {
    assert.ok(checks.length > 0, `${scenario} reported checks`);
  }

  // b and c: not one result differs from a.
  const expected = resultsOf(runs.direct);
  assert.deepEqual(resultsOf(runs.library), expected, "behind the PEP library");
  assert.deepEqual(resultsOf(runs.proxy), expected, "behind Traefik with forward-auth");
  assert.equal(runs.library.exitCode, 0, runs.library.output);
  assert.equal(runs.proxy.exitCode, 0, runs.proxy.output);
  assert.deepEqual(pepErrors, [], "the PEP never failed closed");

  // README "MCP conformance" shows this very table.
  const table = await resultsTable(known, [
    ["Directly", runs.direct],
    ["Behind the PEP library", runs.library],
    ["Behind Traefik (forward-auth)", runs.proxy],
  ]);
  assert.ok(
    readFileSync(join(repoRoot, "README.md"), "utf8").includes(table),
    `README.md's "MCP conformance" table is not this run's; put in:\n${table}`,
  );

  // The enforcement was there: each PDP decided, and allowed, every request it was asked about.
  for (const [setup, pdp, endpoint] of [
    ["library", libraryPdp, "evaluations"],
    ["proxy", proxyPdp, "forward_auth"],
  ] as const) {
    const decisions = pdp.decisions();
    const actions = new Set(decisions.map((decision) => decision.action));
    // mcp/stream: the GET streams; mcp/response: the client's answers to elicitation and sampling.
    for (const action of [
      "initialize",
      "mcp/stream",
      "mcp/response",
      "tools/list",
      "tools/call",
      "resources/read",
      "prompts/get",
    ]) {
      assert.ok(
        actions.has(action),
        `${setup}: the PDP decided ${action} (${[...actions].join(", ")})`,
      );
    }
    assert.deepEqual(
      decisions.filter((decision) => decision.outcome !== "allow"),
      [],
      `${setup}: every decision was an allow`,
    );
    assert.ok(
      decisions.every((decision) => decision.endpoint.includes(endpoint)),
      `${setup}: decided through ${endpoint}: ${[...new Set(decisions.map((d) => d.endpoint))].join(", ")}`,
    );
  }
});

/**
 * What the suite leaves out, through each setup with the official client
 * (2025-11-25): the suite's own stream test (server-sse-polling) sends its raw
 * requests as MCP 2025-03-26, a revision that cannot resume, so the SDK never
 * closes that stream; and no scenario ends its session. Here the server closes
 * the tool call's stream mid-call, the client resumes it with Last-Event-ID
 * (a GET the PEP and the proxy decide), and the client ends the session
 * (DELETE, decided too).
 */
test("a session resumes a closed stream (Last-Event-ID) and ends (DELETE) in every setup", async () => {
  for (const [setup, url, server] of [
    ["direct", direct.url, direct],
    ["library", guarded.url, guarded],
    ["proxy", proxiedUrl, direct],
  ] as const) {
    const [resumedBefore, endedBefore] = [server.resumptions(), server.sessionsEnded()];
    const client = new Client({ name: "conformance-sessions", version: "1.0.0" });
    const transport = new StreamableHTTPClientTransport(new URL(url));
    await client.connect(transport);
    try {
      const result = await client.callTool(
        { name: "test_reconnection", arguments: {} },
        undefined,
        {
          timeout: 10_000,
        },
      );
      assert.deepEqual(
        result.content,
        [{ type: "text", text: "Reconnection tool finished." }],
        `${setup}: the answer arrived on the resumed stream`,
      );
      await transport.terminateSession();
    } finally {
      await client.close();
    }
    assert.equal(server.resumptions() - resumedBefore, 1, `${setup}: the client resumed once`);
    assert.equal(server.sessionsEnded() - endedBefore, 1, `${setup}: the session ended`);
  }
  for (const [setup, pdp] of [
    ["library", libraryPdp],
    ["proxy", proxyPdp],
  ] as const) {
    const sessionEnds = () =>
      pdp.decisions().filter((decision) => decision.action === "mcp/session_end");
    // The record reaches the file when the writer gets to it, which may be after the answer.
    await waitUntil(
      `${setup}: the DELETE's decision record`,
      () => sessionEnds().length > 0,
      10_000,
    );
    const ends = sessionEnds();
    assert.equal(ends.length, 1, `${setup}: the PDP decided the DELETE`);
    assert.equal(ends[0]?.outcome, "allow");
  }
  assert.deepEqual(pepErrors, [], "the PEP never failed closed");
});
