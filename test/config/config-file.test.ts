/**
 * The PDP_CONFIG identity file as loadConfig reads it: every problem is
 * reported with its key path, and the non-loopback rule (no caller
 * authentication on a reachable address only when explicitly allowed). One
 * test runs the real process with caller authentication off on 0.0.0.0.
 */
import { freePort } from "../support/ports.ts";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { once } from "node:events";
import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { loadConfig, type Config } from "../../src/config/index.ts";
import { StartupError } from "../../src/errors.ts";
import { repoRoot, scratchDir } from "../support/opa.ts";
import { pdpArgs } from "../support/pdp-command.ts";

type Json = Record<string, unknown>;

const scratch = scratchDir();
after(() => {
  scratch.remove();
});

let fileCount = 0;

/** Writes a PDP_CONFIG file (JSON, which is YAML too) or raw text, and returns its path. */
function configFile(content: Json | string): string {
  fileCount += 1;
  const file = join(scratch.dir, `pdp-config-${fileCount}.yaml`);
  writeFileSync(file, typeof content === "string" ? content : JSON.stringify(content, null, 2));
  return file;
}

/**
 * Files the configuration refers to must exist and be readable (what they
 * hold is checked where they are read, when the app is built): stand-ins.
 */
function existingFile(name: string): string {
  const file = join(scratch.dir, name);
  writeFileSync(file, "stand-in\n");
  return file;
}
const files = {
  cert: existingFile("cert.pem"),
  key: existingFile("key.pem"),
  ca: existingFile("ca.pem"),
  jwks: existingFile("jwks.json"),
  pem: existingFile("public-key.pem"),
};
const tlsFiles = { cert_file: files.cert, key_file: files.key, client_ca_file: files.ca };

function digest(): string {
  return createHash("sha256").update(randomBytes(32)).digest("hex");
}

const issuer = {
  issuer: "https://idp.example.com",
  jwks_uri: "https://idp.example.com/.well-known/jwks.json",
  audiences: ["https://mcp.example.com/files"],
};

const apiCaller = { name: "pep", api_key_sha256: [digest()] };

const servers = { files: { resource: "https://mcp.example.com/files" } };

/** loadConfig's problems; fails unless it refuses with config_invalid. */
function problemsOf(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (error) {
    assert.ok(error instanceof StartupError, String(error));
    assert.equal(error.code, "config_invalid");
    return [...error.problems];
  }
  return assert.fail("expected config_invalid");
}

/** The key path each problem of `file` names: what follows `PDP_CONFIG <file>: ` up to the next colon. */
function keysOf(file: string, problems: readonly string[]): string[] {
  const prefix = `PDP_CONFIG ${file}: `;
  return problems
    .map((problem) => {
      assert.ok(problem.startsWith(prefix), `${problem} names the file`);
      const rest = problem.slice(prefix.length);
      const colon = rest.indexOf(":");
      return colon === -1 ? rest : rest.slice(0, colon);
    })
    .sort();
}

function fileKeys(content: Json | string, env: Record<string, string> = {}): string[] {
  const file = configFile(content);
  return keysOf(file, problemsOf({ ...env, PDP_CONFIG: file }));
}

function loads(env: Record<string, string>): Config {
  try {
    return loadConfig(env);
  } catch (error) {
    return assert.fail(
      `expected the configuration to load: ${error instanceof StartupError ? error.problems.join("; ") : String(error)}`,
    );
  }
}

describe("PDP_CONFIG problems name their key", () => {
  test("issuers[0].audiences empty (absent means: any registered server)", () => {
    assert.deepEqual(fileKeys({ issuers: [issuer, { ...issuer, audiences: [] }] }), [
      "issuers[1].audiences",
    ]);
    const { audiences: _audiences, ...withoutAudiences } = issuer;
    const config = loads({ PDP_CONFIG: configFile({ issuers: [withoutAudiences], servers }) });
    assert.equal(config.auth.issuers[0]?.audiences, undefined);
  });

  test("two key sources, or none, for one issuer", () => {
    assert.deepEqual(fileKeys({ issuers: [{ ...issuer, jwks_file: files.jwks }] }), ["issuers[0]"]);
    assert.deepEqual(
      fileKeys({
        issuers: [{ ...issuer, public_key_files: [files.pem], jwks_file: files.jwks }],
      }),
      ["issuers[0]"],
    );
    const { jwks_uri: _uri, ...keyless } = issuer;
    assert.deepEqual(fileKeys({ issuers: [issuer, keyless] }), ["issuers[1]"]);
  });

  test("jwks_uri over plain http to a non-loopback host, or not a URL", () => {
    for (const uri of [
      "http://idp.example.com/jwks.json",
      "http://10.0.0.5/jwks.json",
      "http://127.0.0.1.example.com/jwks.json",
      "ftp://idp.example.com/jwks.json",
    ]) {
      assert.deepEqual(fileKeys({ issuers: [{ ...issuer, jwks_uri: uri }] }), [
        "issuers[0].jwks_uri",
      ]);
    }
    assert.deepEqual(fileKeys({ issuers: [{ ...issuer, jwks_uri: "not a url" }] }), [
      "issuers[0].jwks_uri",
    ]);
  });

  test("plain http jwks_uri on loopback is accepted", () => {
    for (const uri of [
      "http://127.0.0.1:8080/jwks.json",
      "http://localhost:8080/jwks.json",
      "http://[::1]:8080/jwks.json",
    ]) {
      const config = loads({ PDP_CONFIG: configFile({ issuers: [{ ...issuer, jwks_uri: uri }] }) });
      assert.deepEqual(config.auth.issuers[0]?.keys, { jwksUri: uri });
    }
  });

  test("a symmetric or unsigned algorithm (HS256, none) is refused", () => {
    assert.deepEqual(
      fileKeys({ issuers: [{ ...issuer, algorithms: ["RS256", "HS256", "none"] }] }),
      ["issuers[0].algorithms[1]", "issuers[0].algorithms[2]"],
    );
    assert.deepEqual(fileKeys({ issuers: [{ ...issuer, algorithms: [] }] }), [
      "issuers[0].algorithms",
    ]);
  });

  test("api_key_sha256 entries that are not 64 hex digits", () => {
    const good = digest();
    assert.deepEqual(
      fileKeys({
        callers: [
          {
            name: "pep",
            api_key_sha256: [good, "abc", `${good.slice(0, 63)}g`, good.slice(1), `${good}0`],
          },
        ],
      }),
      [
        "callers[0].api_key_sha256[1]",
        "callers[0].api_key_sha256[2]",
        "callers[0].api_key_sha256[3]",
        "callers[0].api_key_sha256[4]",
      ],
    );
    assert.deepEqual(fileKeys({ ops: { api_key_sha256: ["secret"] } }), ["ops.api_key_sha256[0]"]);
  });

  test("an unknown key, at the top level or deeper", () => {
    assert.deepEqual(fileKeys({ callers: [apiCaller], caller: [] }), ["caller"]);
    assert.deepEqual(fileKeys({ callers: [{ ...apiCaller, api_key: "plain" }] }), [
      "callers[0].api_key",
    ]);
    assert.deepEqual(fileKeys({ issuers: [{ ...issuer, audience: "x" }] }), [
      "issuers[0].audience",
    ]);
  });

  test("a caller with neither api_key_sha256 nor mtls_subjects", () => {
    assert.deepEqual(fileKeys({ callers: [apiCaller, { name: "nobody" }] }), ["callers[1]"]);
    assert.deepEqual(
      fileKeys({ callers: [{ name: "empty", api_key_sha256: [], mtls_subjects: [] }] }),
      ["callers[0]"],
    );
  });

  test("a caller without a name", () => {
    assert.deepEqual(fileKeys({ callers: [{ api_key_sha256: [digest()] }] }), ["callers[0].name"]);
  });

  test("duplicate caller names", () => {
    assert.deepEqual(
      fileKeys({
        callers: [
          apiCaller,
          { name: "other", api_key_sha256: [digest()] },
          { ...apiCaller, api_key_sha256: [digest()] },
        ],
      }),
      ["callers[2].name"],
    );
  });

  test("one credential may identify only one caller", () => {
    const shared = digest();
    assert.deepEqual(
      fileKeys({
        callers: [
          { name: "pep", api_key_sha256: [shared] },
          { name: "gateway", api_key_sha256: [shared.toUpperCase()], assert_subject: true },
        ],
      }),
      ["callers[1].api_key_sha256[0]"],
    );
    assert.deepEqual(
      fileKeys({
        callers: [{ name: "pep", api_key_sha256: [shared] }],
        ops: { api_key_sha256: [shared] },
      }),
      ["ops.api_key_sha256[0]"],
    );
    assert.deepEqual(
      fileKeys({
        callers: [
          { name: "a", mtls_subjects: ["gw.internal"] },
          { name: "b", mtls_subjects: ["gw.internal"] },
        ],
        tls: tlsFiles,
      }),
      ["callers[1].mtls_subjects[0]"],
    );
  });

  test("ops settings that contradict themselves are refused", () => {
    assert.deepEqual(fileKeys({ ops: { open: true, api_key_sha256: [digest()] } }), ["ops"]);
    assert.deepEqual(fileKeys({ ops: { open: false } }), ["ops"]);
    const config = loads({
      PDP_CONFIG: configFile({
        ops: { open: false },
        callers: [{ ...apiCaller, permissions: ["ops"] }],
      }),
    });
    assert.equal(config.auth.ops.open, false);
  });

  test("mtls_subjects without tls.client_ca_file", () => {
    const mtlsCaller = { name: "gateway", mtls_subjects: ["gateway.internal"] };
    assert.deepEqual(fileKeys({ callers: [mtlsCaller] }), ["tls.client_ca_file"]);
    assert.deepEqual(
      fileKeys({ callers: [mtlsCaller], tls: { cert_file: files.cert, key_file: files.key } }),
      ["tls.client_ca_file"],
    );
    const config = loads({
      PDP_CONFIG: configFile({
        callers: [mtlsCaller],
        tls: tlsFiles,
      }),
    });
    assert.deepEqual(config.auth.callers?.[0]?.mtlsSubjects, ["gateway.internal"]);
  });

  test("tls without cert_file or key_file", () => {
    assert.deepEqual(fileKeys({ tls: { client_ca_file: files.ca } }), [
      "tls.cert_file",
      "tls.key_file",
    ]);
  });

  test("a file that cannot be read or parsed names PDP_CONFIG and the path", () => {
    const missing = join(scratch.dir, "does-not-exist.yaml");
    const directory = join(scratch.dir, "a-directory");
    mkdirSync(directory);
    const unreadable = configFile({ callers: [apiCaller] });
    chmodSync(unreadable, 0o000);
    const malformed = configFile("callers: [\n  - name: pep\n");
    const paths = [missing, directory, malformed];
    // root reads a mode-000 file anyway; the case only means something for other users.
    if (process.getuid?.() !== 0) paths.push(unreadable);
    for (const path of paths) {
      const problems = problemsOf({ PDP_CONFIG: path });
      assert.equal(problems.length, 1, problems.join("; "));
      assert.ok(problems[0]?.startsWith(`PDP_CONFIG ${path}:`), problems[0]);
    }
  });

  test("a file that is not a mapping (a list, a scalar, empty) is refused at the top level", () => {
    for (const content of ["- callers\n", "callers\n", ""]) {
      assert.deepEqual(fileKeys(content), ["(top level)"], JSON.stringify(content));
    }
  });

  test("several problems in one file are reported together", () => {
    assert.deepEqual(
      fileKeys({
        issuers: [{ issuer: "https://idp.example.com", algorithms: ["HS256"] }],
        callers: [{ name: "pep", api_key_sha256: ["short"], permissions: ["root"] }],
        extra: true,
      }),
      [
        "callers[0].api_key_sha256[0]",
        "callers[0].permissions[0]",
        "extra",
        "issuers[0].algorithms[0]",
      ],
    );
    assert.deepEqual(
      fileKeys({
        issuers: [
          { ...issuer, jwks_file: files.jwks },
          { ...issuer, jwks_uri: "http://idp.example.com/jwks.json" },
        ],
        callers: [apiCaller, apiCaller, { name: "nobody" }],
      }),
      [
        "callers[1].api_key_sha256[0]",
        "callers[1].name",
        "callers[2]",
        "issuers[0]",
        "issuers[1].jwks_uri",
      ],
    );
  });

  test("file problems come with the environment's problems, in one refusal", () => {
    const file = configFile({ callers: [{ name: "nobody" }] });
    const problems = problemsOf({ PDP_CONFIG: file, PORT: "http", LOG_LEVEL: "loud" });
    assert.equal(problems.length, 3, problems.join("; "));
    assert.ok(problems.some((p) => p.startsWith("PORT=")));
    assert.ok(problems.some((p) => p.startsWith("LOG_LEVEL=")));
    assert.ok(problems.some((p) => p.startsWith(`PDP_CONFIG ${file}: callers[0]`)));
  });

  test("a complete file loads with its values and defaults", () => {
    const key = digest();
    const config = loads({
      PDP_CONFIG: configFile({
        issuers: [{ ...issuer, algorithms: ["ES256"], required_typ: "at+jwt" }],
        token_cache: { max_entries: 5 },
        callers: [
          { name: "pep", api_key_sha256: [key.toUpperCase()] },
          { name: "gw", mtls_subjects: ["gw.internal"], permissions: [], assert_subject: true },
        ],
        ops: { api_key_sha256: [digest()] },
        tls: tlsFiles,
      }),
    });
    assert.equal(config.publicUrl, "https://127.0.0.1:8180");
    assert.equal(config.auth.tokenCacheEntries, 5);
    const first = config.auth.issuers[0];
    assert.ok(first !== undefined);
    assert.deepEqual(first.algorithms, ["ES256"]);
    assert.equal(first.requiredTyp, "at+jwt");
    assert.deepEqual(config.auth.callers, [
      {
        name: "pep",
        apiKeySha256: [key.toUpperCase()],
        mtlsSubjects: [],
        permissions: ["authzen", "forward_auth", "opa_data"],
        assertSubject: false,
      },
      {
        name: "gw",
        apiKeySha256: [],
        mtlsSubjects: ["gw.internal"],
        permissions: [],
        assertSubject: true,
      },
    ]);
    assert.equal(config.auth.ops.open, false, "ops keys close the ops endpoints by default");
  });
});

describe("the non-loopback rule", () => {
  test("HOST=0.0.0.0 without callers → config_invalid naming HOST and PDP_ALLOW_UNAUTHENTICATED_CALLERS", () => {
    for (const env of [
      { HOST: "0.0.0.0" },
      { HOST: "::" },
      { HOST: "192.0.2.10" },
      { HOST: "0.0.0.0", PDP_ALLOW_UNAUTHENTICATED_CALLERS: "false" },
      // Token issuers alone are not caller authentication.
      { HOST: "0.0.0.0", PDP_CONFIG: configFile({ issuers: [issuer] }) },
    ]) {
      const problems = problemsOf(env);
      assert.equal(problems.length, 1, problems.join("; "));
      assert.ok(problems[0]?.startsWith(`HOST=${env.HOST}:`), problems[0]);
      assert.match(problems[0] ?? "", /PDP_ALLOW_UNAUTHENTICATED_CALLERS/);
    }
  });

  test("HOST=0.0.0.0 with PDP_ALLOW_UNAUTHENTICATED_CALLERS=true loads", () => {
    const config = loads({ HOST: "0.0.0.0", PDP_ALLOW_UNAUTHENTICATED_CALLERS: "true" });
    assert.equal(config.host, "0.0.0.0");
    assert.equal(config.allowUnauthenticatedCallers, true);
    assert.equal(config.auth.callers, undefined);
  });

  test("HOST=0.0.0.0 with callers loads", () => {
    const config = loads({ HOST: "0.0.0.0", PDP_CONFIG: configFile({ callers: [apiCaller] }) });
    assert.equal(config.allowUnauthenticatedCallers, false);
    assert.equal(config.auth.callers?.[0]?.name, "pep");
  });

  test("loopback addresses need no callers", () => {
    for (const host of ["127.0.0.1", "127.0.0.53", "::1", "localhost"]) {
      assert.equal(loads({ HOST: host }).allowUnauthenticatedCallers, false, host);
    }
  });

  test("PDP_ALLOW_UNAUTHENTICATED_CALLERS accepts only true or false", () => {
    for (const value of ["yes", "1", "TRUE", "on"]) {
      const problems = problemsOf({ PDP_ALLOW_UNAUTHENTICATED_CALLERS: value });
      assert.equal(problems.length, 1, problems.join("; "));
      assert.ok(
        problems[0]?.startsWith(`PDP_ALLOW_UNAUTHENTICATED_CALLERS=${value}:`),
        problems[0],
      );
    }
    const both = problemsOf({ HOST: "0.0.0.0", PDP_ALLOW_UNAUTHENTICATED_CALLERS: "yes" });
    assert.equal(both.length, 2, "an unrecognized value does not allow anything");
  });
});

interface LogLine {
  level?: string;
  message?: string;
  host?: string;
  code?: string;
  problems?: string[];
}

function logLines(output: string): LogLine[] {
  return output
    .split("\n")
    .filter((line) => line.trim().startsWith("{"))
    .map((line) => JSON.parse(line) as LogLine);
}

function startMain(env: Record<string, string>): {
  exit: Promise<number | null>;
  output: () => string;
  kill: (signal: NodeJS.Signals) => void;
  running: () => boolean;
} {
  const child = spawn(process.execPath, pdpArgs(), {
    cwd: repoRoot,
    env: {
      PATH: process.env.PATH ?? "",
      HOME: process.env.HOME ?? "",
      PDP_DRAIN_DELAY_MS: "0",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const exit = once(child, "exit").then(([code]) => code as number | null);
  return {
    exit,
    output: () => output,
    kill: (signal) => {
      child.kill(signal);
    },
    running: () => child.exitCode === null && child.signalCode === null,
  };
}

describe("the real process", () => {
  test("HOST=0.0.0.0 without callers refuses to start (exit 1, config_invalid naming HOST)", async () => {
    const started = startMain({ HOST: "0.0.0.0", PORT: String(await freePort()) });
    assert.equal(await started.exit, 1);
    const line = logLines(started.output()).at(-1);
    assert.equal(line?.code, "config_invalid", started.output());
    assert.ok(
      line.problems?.some((p) => p.startsWith("HOST=0.0.0.0:")),
      started.output(),
    );
  });

  test("HOST=0.0.0.0 with PDP_ALLOW_UNAUTHENTICATED_CALLERS=true starts and warns loudly", async () => {
    const port = await freePort();
    const started = startMain({
      HOST: "0.0.0.0",
      PORT: String(port),
      PDP_ALLOW_UNAUTHENTICATED_CALLERS: "true",
    });
    try {
      const deadline = Date.now() + 20000;
      let ready = false;
      while (!ready && Date.now() < deadline && started.running()) {
        try {
          ready = (await fetch(`http://127.0.0.1:${port}/ready`)).status === 200;
        } catch {
          // not listening yet
        }
        if (!ready) await new Promise((resolve) => setTimeout(resolve, 100));
      }
      assert.ok(ready, `the PDP did not become ready:\n${started.output()}`);

      const warnings = logLines(started.output()).filter(
        (line) =>
          line.level === "warn" &&
          /caller authentication is off/i.test(line.message ?? "") &&
          /PDP_ALLOW_UNAUTHENTICATED_CALLERS/.test(line.message ?? ""),
      );
      assert.equal(warnings.length, 1, started.output());
      assert.equal(warnings[0]?.host, "0.0.0.0");

      // Caller authentication really is off: no credentials, still a decision.
      const response = await fetch(`http://127.0.0.1:${port}/access/v1/evaluation`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          subject: { type: "user", id: "alice" },
          action: { name: "ping" },
          resource: { type: "mcp_server", id: "files" },
        }),
      });
      assert.equal(response.status, 200);
      await response.body?.cancel();
    } finally {
      if (started.running()) started.kill("SIGTERM");
    }
    assert.equal(await started.exit, 0, started.output());
  });
});

describe("servers: the one registry of protected MCP servers", () => {
  test("each server has its canonical resource, a derived or given metadata URL and MCP settings", () => {
    const config = loads({
      PDP_CONFIG: configFile({
        issuers: [issuer],
        servers: {
          files: { resource: "https://mcp.example.com/files" },
          git: {
            resource: "https://mcp.example.com/git",
            resource_metadata: "https://meta.example.com/git",
            enforces_mcp_headers: true,
            speaks_mcp_2026_07_28: true,
            proxy: "envoy",
          },
        },
      }),
    });
    assert.deepEqual(config.auth.servers, [
      {
        name: "files",
        resource: "https://mcp.example.com/files",
        resourceMetadata: "https://mcp.example.com/.well-known/oauth-protected-resource/files",
        enforcesMcpHeaders: false,
        speaksMcp20260728: false,
        proxy: undefined,
      },
      {
        name: "git",
        resource: "https://mcp.example.com/git",
        resourceMetadata: "https://meta.example.com/git",
        enforcesMcpHeaders: true,
        speaksMcp20260728: true,
        proxy: "envoy",
      },
    ]);
    // Believing client headers is a loud choice; an issuer audience outside the registry is flagged.
    assert.ok(config.auth.warnings.some((w) => w.includes("servers.git.enforces_mcp_headers")));
    assert.ok(config.auth.warnings.some((w) => w.includes("servers.git.speaks_mcp_2026_07_28")));
    assert.ok(!config.auth.warnings.some((w) => w.includes("servers.files.")));
  });

  test("a resource in another spelling, with a fragment or credentials, or shared, is refused", () => {
    const wrong = {
      a: { resource: "HTTPS://MCP.example.com/a" },
      b: { resource: "https://mcp.example.com:443/b" },
      c: { resource: "https://mcp.example.com/c#x" },
      d: { resource: "https://user:pw@mcp.example.com/d" },
      e: { resource: "files" },
      f: { resource: "https://mcp.example.com/" },
      g: { resource: "https://mcp.example.com/g" },
      h: { resource: "https://mcp.example.com/g" },
      i: { resource: "https://mcp.example.com/i", resource_metadata: "not a url" },
    };
    // A name outside [A-Za-z0-9._-] is refused beside every other problem of the registry.
    assert.deepEqual(
      fileKeys({ servers: { ...wrong, "BAD NAME": { resource: "https://mcp.example.com/j" } } }),
      [
        "servers.BAD NAME",
        "servers.a.resource",
        "servers.b.resource",
        "servers.c.resource",
        "servers.d.resource",
        "servers.e.resource",
        "servers.f.resource",
        "servers.h.resource",
        "servers.i.resource_metadata",
      ],
    );
    assert.deepEqual(fileKeys({ servers: wrong }), [
      "servers.a.resource",
      "servers.b.resource",
      "servers.c.resource",
      "servers.d.resource",
      "servers.e.resource",
      "servers.f.resource",
      "servers.h.resource",
      "servers.i.resource_metadata",
    ]);
  });

  test("forward_auth.servers still loads, with a deprecation warning; a name in both places is refused", () => {
    const config = loads({
      PDP_CONFIG: configFile({ forward_auth: { servers } }),
    });
    assert.deepEqual(
      config.auth.servers.map((s) => [s.name, s.resource]),
      [["files", "https://mcp.example.com/files"]],
    );
    assert.ok(config.auth.warnings.some((w) => w.includes("forward_auth.servers is deprecated")));
    assert.deepEqual(fileKeys({ servers, forward_auth: { servers } }), [
      "forward_auth.servers.files",
    ]);
  });

  test("mcp_headers_without_body: trust is refused; the per-server enforces_mcp_headers replaces it", () => {
    assert.deepEqual(fileKeys({ forward_auth: { mcp_headers_without_body: "trust" } }), [
      "forward_auth.mcp_headers_without_body",
    ]);
    const config = loads({
      PDP_CONFIG: configFile({ forward_auth: { mcp_headers_without_body: "ignore" } }),
    });
    assert.ok(config.auth.warnings.some((w) => w.includes("mcp_headers_without_body")));
  });

  test("issuers without servers, or an audience of no server, are warned about", () => {
    const lonely = loads({ PDP_CONFIG: configFile({ issuers: [issuer] }) });
    assert.ok(lonely.auth.warnings.some((w) => w.includes("servers is empty")));
    const stray = loads({
      PDP_CONFIG: configFile({
        issuers: [
          { ...issuer, audiences: ["https://mcp.example.com/files", "https://x.example.com"] },
        ],
        servers,
      }),
    });
    assert.ok(stray.auth.warnings.some((w) => w.includes("issuers[0].audiences[1]")));
    assert.deepEqual(
      fileKeys({ issuers: [{ ...issuer, audiences: ["https://MCP.example.com/files"] }], servers }),
      ["issuers[0].audiences[0]"],
    );
  });
});
