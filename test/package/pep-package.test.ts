/**
 * The PEP library as an MCP server project gets it: `npm pack` of
 * packages/pep (which builds src/pep/index.ts and exactly what it imports),
 * the tarball installed offline into a fresh project, and a script there
 * (fixtures/pep-consumer.mjs) running an official-SDK server guarded by the
 * packed PEP against a real PDP on loopback, with an SDK client whose calls
 * are allowed and denied as the policy says. The project gets express and the
 * SDK from this repository's node_modules (symlinked: they are the server's
 * own dependencies, not the PEP's, and the test stays offline and fast).
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
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
import { JwksServer } from "../support/jwks-server.js";
import { repoRoot, scratchDir } from "../support/opa.js";
import { startPdp, type RunningPdp } from "../support/pdp.js";
import { freePort } from "../support/ports.js";
import { generateTestKey, mint } from "../support/tokens.js";

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
  for (const name of ["express", "@modelcontextprotocol/sdk"]) {
    const target = join(project, "node_modules", name);
    mkdirSync(join(target, ".."), { recursive: true });
    symlinkSync(join(repoRoot, "node_modules", name), target);
  }
  copyFileSync(
    join(repoRoot, "test", "package", "fixtures", "pep-consumer.mjs"),
    join(project, "pep-consumer.mjs"),
  );
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

test("an official-SDK MCP server guarded by the installed PEP: a read is allowed and runs, a write without mcp:write is refused and does not", async () => {
  const key = await generateTestKey("ES256");
  jwks = await JwksServer.start([key.publicJwk]);
  const issuer = "https://idp.package.test";
  const mcpPort = await freePort();
  const resource = `http://127.0.0.1:${mcpPort}/mcp`;
  const apiKey = randomBytes(24).toString("base64url");
  const configFile = join(scratch.dir, "pdp-config.json");
  writeFileSync(
    configFile,
    JSON.stringify({
      issuers: [{ issuer, jwks_uri: jwks.url, audiences: [resource], algorithms: ["ES256"] }],
      servers: { files: { resource } },
      callers: [
        {
          name: "files-mcp",
          api_key_sha256: [createHash("sha256").update(apiKey).digest("hex")],
          permissions: ["authzen"],
        },
      ],
    }),
  );
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

  const { stdout } = await run(process.execPath, ["pep-consumer.mjs"], {
    cwd: project,
    timeout: 30000,
    env: {
      PATH: process.env.PATH ?? "",
      PDP_URL: pdp.url,
      PDP_API_KEY: apiKey,
      MCP_PORT: String(mcpPort),
      ACCESS_TOKEN: token,
    },
  });
  const result = JSON.parse(stdout.trim()) as {
    calls: Record<string, { text?: string; status?: number; reasons?: string[] }>;
    ran: string[];
  };
  assert.deepEqual(result.calls.read_file, { text: "read_file ran" });
  assert.equal(result.calls.write_file?.status, 403);
  assert.ok(result.calls.write_file.reasons?.includes("scope_missing"), stdout);
  assert.deepEqual(result.ran, ["read_file"]);
  // The PDP really decided both tool calls.
  const toolCalls = pdp.decisions
    .filter((record) => record.action === "tools/call")
    .map((record) => [(record.resource as { id: string }).id, record.outcome]);
  assert.deepEqual(toolCalls, [
    ["read_file", "allow"],
    ["write_file", "deny"],
  ]);
});
