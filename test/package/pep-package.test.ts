/**
 * The PEP library as an MCP server project gets it: `npm pack` of
 * packages/pep (which builds src/pep/index.ts and exactly what it imports),
 * the tarball installed offline into a fresh project, and scripts there
 * running an official-SDK server guarded by the packed PEP against a real PDP
 * on loopback, with an SDK client whose calls are allowed and denied as the
 * policy says: fixtures/pep-consumer.mjs on SDK 1.x (MCP 2025-11-25),
 * fixtures/pep-consumer-v2.mjs on SDK v2 (MCP 2026-07-28). The project gets
 * express and the SDKs from this repository's node_modules (symlinked: they
 * are the server's own dependencies, not the PEP's, and the test stays
 * offline and fast).
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  copyFileSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join, relative } from "node:path";
import { after, before, test } from "node:test";
import { promisify } from "node:util";
import { readmeBlocks } from "../e2e/support/readme.ts";
import { writePdpConfigForPep } from "../pep/pdp-config-for-pep.ts";
import { JwksServer } from "../support/jwks-server.ts";
import { repoRoot, scratchDir } from "../support/opa.ts";
import { startPdp, type RunningPdp } from "../support/pdp.ts";
import { freePort } from "../support/ports.ts";
import { generateTestKey, mint } from "../support/tokens.ts";

const run = promisify(execFile);
const scratch = scratchDir();
const project = join(scratch.dir, "mcp-server-project");
const installed = join(project, "node_modules", "@mcp-pdp", "pep");
let packedFiles: string[] = [];
let jwks: JwksServer | undefined;
let pdp: RunningPdp | undefined;

before(async () => {
  const { stdout } = await run(
    "npm",
    ["pack", "--json", "--pack-destination", scratch.dir, "--silent"],
    { cwd: join(repoRoot, "packages", "pep"), timeout: 120000 },
  );
  const [packed] = JSON.parse(stdout.slice(stdout.indexOf("["))) as {
    filename: string;
    files: { path: string }[];
  }[];
  assert.ok(packed);
  packedFiles = packed.files.map((file) => file.path).sort();
  mkdirSync(project);
  writeFileSync(
    join(project, "package.json"),
    JSON.stringify({
      name: "mcp-server-project",
      private: true,
      type: "module",
      dependencies: { "@mcp-pdp/pep": `file:${join(scratch.dir, packed.filename)}` },
    }),
  );
  await run("npm", ["install", "--offline", "--no-audit", "--no-fund", "--ignore-scripts"], {
    cwd: project,
    timeout: 120000,
  });
  for (const name of [
    "express",
    "@modelcontextprotocol/sdk",
    "@modelcontextprotocol/server",
    "@modelcontextprotocol/client",
  ]) {
    const target = join(project, "node_modules", name);
    mkdirSync(join(target, ".."), { recursive: true });
    symlinkSync(join(repoRoot, "node_modules", name), target);
  }
  for (const fixture of ["pep-consumer.mjs", "pep-consumer-v2.mjs"]) {
    copyFileSync(join(repoRoot, "test", "package", "fixtures", fixture), join(project, fixture));
  }
});

after(async () => {
  await pdp?.close();
  await jwks?.close();
  scratch.remove();
});

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? filesUnder(join(dir, entry.name)) : [join(dir, entry.name)],
  );
}

test("the packed PEP declares no dependencies and imports only node: builtins and its own files", () => {
  const manifest = JSON.parse(readFileSync(join(installed, "package.json"), "utf8")) as Record<
    string,
    unknown
  >;
  const root = JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as {
    version: string;
  };
  assert.equal(
    manifest.version,
    root.version,
    "the PEP is released with the PDP it was built from",
  );
  for (const field of ["dependencies", "peerDependencies", "optionalDependencies"]) {
    assert.equal(manifest[field], undefined, `${field} in the packed package.json`);
  }
  assert.ok(packedFiles.includes("dist/pep/index.js"), packedFiles.join("\n"));
  assert.ok(packedFiles.includes("dist/pep/index.d.ts"));
  const code = filesUnder(join(installed, "dist")).filter((file) => /\.(d\.ts|js)$/.test(file));
  assert.ok(code.length > 2);
  for (const file of code) {
    const text = readFileSync(file, "utf8");
    for (const [, specifier = ""] of text.matchAll(
      /\bfrom\s+"([^"]+)"|\bimport\s*\(\s*"([^"]+)"/g,
    )) {
      assert.ok(
        specifier.startsWith("node:") || specifier.startsWith("./") || specifier.startsWith("../"),
        `${relative(installed, file)} imports ${specifier}`,
      );
    }
  }
  // Nothing of the server came along: the build follows the import closure of src/pep/index.ts.
  assert.deepEqual(
    packedFiles.filter((file) =>
      /^dist\/(app|config|main|index)\.|^dist\/(http|api|policy|decision|observability)\//.test(
        file,
      ),
    ),
    [],
  );
});

/** The PDP both consumer projects ask, started by the first one (one issuer, one server). */
let consumerSetup:
  Promise<{ pdp: RunningPdp; mcpPort: number; apiKey: string; token: string }> | undefined;

function setUpConsumers() {
  consumerSetup ??= (async () => {
    const key = await generateTestKey("ES256");
    jwks = await JwksServer.start([key.publicJwk]);
    const issuer = "https://idp.package.test";
    const mcpPort = await freePort();
    const resource = `http://127.0.0.1:${mcpPort}/mcp`;
    const apiKey = randomBytes(24).toString("base64url");
    const configFile = writePdpConfigForPep(scratch.dir, {
      issuer,
      jwksUrl: jwks.url,
      servers: { files: resource },
      apiKey,
    });
    pdp = await startPdp({
      env: { PDP_CONFIG: configFile, PDP_DATA: join(repoRoot, "examples", "operator-data.yaml") },
    });
    const now = Math.floor(Date.now() / 1000);
    const token = await mint(key, {
      iss: issuer,
      sub: "alice",
      aud: resource,
      scope: "mcp:read",
      iat: now - 60,
      exp: now + 3600,
      auth_time: now - 60,
    });
    return { pdp, mcpPort, apiKey, token };
  })();
  return consumerSetup;
}

/** Runs a consumer script in the project; its one line of JSON. */
async function runConsumer(fixture: string): Promise<Record<string, unknown>> {
  const { pdp: running, mcpPort, apiKey, token } = await setUpConsumers();
  const { stdout } = await run(process.execPath, [fixture], {
    cwd: project,
    timeout: 30000,
    env: {
      PATH: process.env.PATH ?? "",
      PDP_URL: running.url,
      PDP_API_KEY: apiKey,
      MCP_PORT: String(mcpPort),
      ACCESS_TOKEN: token,
    },
  });
  return JSON.parse(stdout.trim()) as Record<string, unknown>;
}

/** The tools/call decisions the PDP recorded from `from` on: [tool, outcome]. */
function toolCallDecisions(from: number): [string, unknown][] {
  return (pdp?.decisions ?? [])
    .slice(from)
    .filter((record) => record.action === "tools/call")
    .map((record) => [(record.resource as { id: string }).id, record.outcome]);
}

interface ConsumerResult {
  calls: Record<
    string,
    { text?: string; status?: number; reasons?: string[]; requiredScope?: string }
  >;
  ran: string[];
}

/** The same assertions on both eras: the read runs, the write is refused by the PDP. */
function assertReadAllowedWriteRefused(result: ConsumerResult, decisions: [string, unknown][]) {
  assert.deepEqual(result.calls.read_file, { text: "read_file ran" });
  const refused = result.calls.write_file;
  assert.equal(refused?.status, 403);
  // 1.x shows the PEP's reasons; v2 turns the challenge into the scope its step-up asks for.
  assert.ok(
    refused.reasons?.includes("scope_missing") === true || refused.requiredScope === "mcp:write",
    JSON.stringify(result),
  );
  assert.deepEqual(result.ran, ["read_file"]);
  // The PDP really decided both tool calls.
  assert.deepEqual(decisions, [
    ["read_file", "allow"],
    ["write_file", "deny"],
  ]);
}

test("an official-SDK 1.x MCP server guarded by the installed PEP: a read is allowed and runs, a write without mcp:write is refused and does not", async () => {
  const from = (await setUpConsumers()).pdp.decisions.length;
  const result = (await runConsumer("pep-consumer.mjs")) as unknown as ConsumerResult;
  assert.ok(result.calls.write_file?.reasons?.includes("scope_missing"), JSON.stringify(result));
  assertReadAllowedWriteRefused(result, toolCallDecisions(from));
});

test("an official-SDK v2 MCP server (MCP 2026-07-28) guarded by the same installed PEP: the read runs, the write is refused, tools/list is filtered and private", async () => {
  const from = (await setUpConsumers()).pdp.decisions.length;
  const result = (await runConsumer("pep-consumer-v2.mjs")) as unknown as ConsumerResult & {
    listed: string[];
    cacheScope: unknown;
    protocolVersion: unknown;
  };
  assert.equal(result.protocolVersion, "2026-07-28");
  // The list filter decides each listed tool as a tools/call (write_file: denied), before the calls.
  assert.deepEqual(result.listed, ["read_file"]);
  assert.equal(result.cacheScope, "private");
  assert.deepEqual(result.calls.write_file, { status: 403, requiredScope: "mcp:write" });
  assertReadAllowedWriteRefused(result, toolCallDecisions(from).slice(2));
});

test("the README's v2 example mounts the v2 server as the package test runs it", () => {
  const fixture = readFileSync(
    join(repoRoot, "test", "package", "fixtures", "pep-consumer-v2.mjs"),
    "utf8",
  );
  const start = "// README:start (the README's v2 example shows this part verbatim)\n";
  const shown = fixture.slice(
    fixture.indexOf(start) + start.length,
    fixture.indexOf("// README:end"),
  );
  assert.ok(shown.includes('app.all("/mcp", authorize'), "the fixture lost its README part");
  assert.ok(
    readmeBlocks().some((block) => block.lang === "ts" && block.text.includes(shown)),
    `README.md lost the v2 mounting that pep-consumer-v2.mjs runs; put back:\n${shown}`,
  );
});
