/**
 * `mcp-pdp serve|check|decide`: arguments parsed before anything is read
 * (help and version everywhere, usage errors exit 2), `check` reporting every
 * problem serve would refuse to start with, `decide` answering one AuthZEN
 * request in process as the API would. Most cases call runCli in this process
 * with captured streams; the ones about the process itself (it exits, it
 * reads stdin, it never listens) spawn the real executable.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { once } from "node:events";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Readable } from "node:stream";
import { after, describe, test } from "node:test";
import { exitCodes, runCli } from "../../src/cli/cli.ts";
import { repoRoot, scratchDir } from "../support/opa.ts";
import { pdpArgs } from "../support/pdp-command.ts";

const scratch = scratchDir();
after(() => {
  scratch.remove();
});
const operatorData = join(repoRoot, "examples", "operator-data.yaml");
const version = (
  JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as { version: string }
).version;

interface Ran {
  code: number | undefined;
  stdout: string;
  stderr: string;
}

/** runCli in this process, with `env` as the whole environment and `stdin` as its input. */
async function cli(argv: string[], env: Record<string, string> = {}, stdin = ""): Promise<Ran> {
  let stdout = "";
  let stderr = "";
  const code = await runCli(argv, {
    env,
    stdin: Readable.from([Buffer.from(stdin)]),
    stdout: { write: (text: string) => (stdout += text) },
    stderr: { write: (text: string) => (stderr += text) },
  });
  return { code, stdout, stderr };
}

/** The real executable (test/support/pdp-command.ts), with exactly `env` (plus PATH). */
async function executable(argv: string[], env: Record<string, string> = {}, stdin?: string) {
  const child = spawn(process.execPath, pdpArgs(argv), {
    cwd: repoRoot,
    env: { PATH: process.env.PATH ?? "", ...env },
    stdio: ["pipe", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  child.stdin.end(stdin ?? "");
  const timer = setTimeout(() => child.kill("SIGKILL"), 20000);
  const [code] = (await once(child, "exit")) as [number | null];
  clearTimeout(timer);
  return { code, stdout, stderr };
}

/** Settings serve would refuse: nothing that only parses arguments may look at them. */
const refusedEnv = { PORT: "99999", LOG_LEVEL: "chatty", PDP_CONFIG: "/nonexistent/pdp.yaml" };

describe("arguments", () => {
  for (const command of [[], ["serve"], ["check"], ["decide"]]) {
    test(`${["mcp-pdp", ...command].join(" ")} --help / -h / --version: answered from the arguments alone`, async () => {
      for (const flag of ["--help", "-h"]) {
        const help = await cli([...command, flag], refusedEnv);
        assert.equal(help.code, exitCodes.ok, help.stderr);
        assert.match(help.stdout, /^Usage: mcp-pdp /m);
        assert.match(help.stdout, /^Exit codes:$/m);
        assert.equal(help.stderr, "");
      }
      const shown = await cli([...command, "--version"], refusedEnv);
      assert.deepEqual(shown, { code: exitCodes.ok, stdout: `mcp-pdp ${version}\n`, stderr: "" });
    });
  }

  test("each command's help is its own; `help decide` is `decide --help`", async () => {
    const decide = await cli(["decide", "--help"]);
    assert.match(decide.stdout, /^Usage: mcp-pdp decide .*\[--json\] \[FILE\|-\]$/m);
    assert.deepEqual(await cli(["help", "decide"]), decide);
    assert.match((await cli(["check", "--help"])).stdout, /^Usage: mcp-pdp check /m);
    assert.match((await cli(["--help"])).stdout, /^ {2}check {2}/m);
  });

  test("usage errors exit 2 and say what is wrong, before anything is read", async () => {
    const cases: [string[], RegExp][] = [
      [["deploy"], /unknown command: deploy/],
      [["check", "--nope"], /Unknown option '--nope'/],
      [["serve", "extra"], /extra/],
      [["decide", "a.json", "b.json"], /one FILE/],
      [["check", "--config"], /--config/],
      [["help", "deploy"], /unknown help topic/],
    ];
    for (const [argv, message] of cases) {
      const ran = await cli(argv, refusedEnv);
      assert.equal(ran.code, exitCodes.usage, argv.join(" "));
      assert.match(ran.stderr, message);
      assert.match(ran.stderr, /Run mcp-pdp --help for usage\./);
      assert.equal(ran.stdout, "");
    }
  });

  test("the process: --help exits at once without listening, whatever the configuration says", async () => {
    const ran = await executable(["serve", "--help"], refusedEnv);
    assert.equal(ran.code, 0, ran.stderr);
    assert.match(ran.stdout, /^Usage: mcp-pdp serve /m);
  });
});

describe("check", () => {
  test("a valid setup: exit 0, what would be served, the warnings serve would log", async () => {
    const ran = await cli(["check", "--data", operatorData]);
    assert.equal(ran.code, exitCodes.ok, ran.stderr);
    assert.match(ran.stdout, /^mcp-pdp check: ok$/m);
    // The revision names the operator data too (+data.<digest>).
    assert.match(
      ran.stdout,
      /^ {2}bundle .*bundle\.tar\.gz \(revision sha256-[0-9a-f]{16}\+data\.[0-9a-f]{12}\)$/m,
    );
    assert.match(ran.stdout, new RegExp(`^  data +${operatorData.replace(/[.]/g, "\\.")}$`, "m"));
    assert.match(ran.stdout, /^ {2}listen +http:\/\/127\.0\.0\.1:8180$/m);
    assert.match(ran.stderr, /^warning: caller authentication is off/m);
  });

  test("every configuration problem at once, exit 1", async () => {
    const ran = await cli(["check"], { PORT: "99999", LOG_LEVEL: "chatty" });
    assert.equal(ran.code, exitCodes.failed);
    assert.match(ran.stderr, /^mcp-pdp check: 2 problems$/m);
    assert.match(ran.stderr, /^ {2}- config_invalid: PORT=99999: /m);
    assert.match(ran.stderr, /^ {2}- config_invalid: LOG_LEVEL=chatty: /m);
    assert.equal(ran.stdout, "");
  });

  test("the policy's verdict on the operator data and unreadable TLS files, together", async () => {
    const data = join(scratch.dir, "typo.yaml");
    writeFileSync(data, "unknown_tool: destrutive\n");
    const config = join(scratch.dir, "tls.yaml");
    writeFileSync(
      config,
      [
        "tls:",
        `  cert_file: ${join(scratch.dir, "missing-cert.pem")}`,
        `  key_file: ${join(scratch.dir, "missing-key.pem")}`,
        "",
      ].join("\n"),
    );
    // The environment names other files: the options win.
    const ran = await cli(["check", "--config", config, "--data", data], {
      PDP_DATA: operatorData,
    });
    assert.equal(ran.code, exitCodes.failed, ran.stdout);
    assert.match(ran.stderr, /^ {2}- policy_config_invalid: .*unknown_tool/m);
    assert.match(
      ran.stderr,
      /^ {2}- config_invalid: PDP_CONFIG \S+: tls\.cert_file: .*missing-cert\.pem/m,
    );
    assert.match(
      ran.stderr,
      /^ {2}- config_invalid: PDP_CONFIG \S+: tls\.key_file: .*missing-key\.pem/m,
    );
  });

  test("log files serve could not append to are problems; a writable one is not created", async () => {
    const refused = await cli(["check"], {
      PDP_DECISION_LOG: join(scratch.dir, "no-such-dir", "decisions.log"),
      PDP_DIAGNOSTIC_LOG: scratch.dir,
    });
    assert.equal(refused.code, exitCodes.failed);
    assert.match(refused.stderr, /^ {2}- log_unwritable: PDP_DECISION_LOG=.*no-such-dir.*ENOENT/m);
    assert.match(refused.stderr, /^ {2}- log_unwritable: PDP_DIAGNOSTIC_LOG=.*it is a directory/m);
    const fresh = join(scratch.dir, "decisions.log");
    const fine = await cli(["check"], { PDP_DECISION_LOG: fresh });
    assert.equal(fine.code, exitCodes.ok, fine.stderr);
    assert.equal(existsSync(fresh), false, "check leaves no file behind");
  });

  test("a bundle that is not there: exit 1 naming it (the process, exit code as CI sees it)", async () => {
    const ran = await executable(["check", "--bundle", join(scratch.dir, "no-bundle.tar.gz")]);
    assert.equal(ran.code, 1, ran.stdout);
    assert.match(ran.stderr, /no-bundle\.tar\.gz/);
  });
});

describe("decide", () => {
  /** A write by a user holding only mcp:read, from the office on a managed device. */
  const writeRequest = (scope: string) =>
    JSON.stringify({
      subject: {
        type: "user",
        id: "alice",
        properties: { scope, auth_time: Math.floor(Date.now() / 1000) - 600, acr: "pwd" },
      },
      action: { name: "tools/call" },
      resource: { type: "tool", id: "files/write_file" },
      context: { ip: "10.1.2.3", device: { trust: "managed" } },
    });

  test("allowed: exit 0, the decision and its risk, readable", async () => {
    const ran = await cli(
      ["decide", "--data", operatorData],
      {},
      writeRequest("mcp:read mcp:write"),
    );
    assert.equal(ran.code, exitCodes.ok, ran.stderr);
    assert.match(
      ran.stdout,
      /^decision: allow\nrisk: write \(from catalog\)\ndecision id: [0-9a-f-]{36}\n$/,
    );
  });

  test("denied: exit 3, each reason with its user message, the step-up", async () => {
    const file = join(scratch.dir, "write.json");
    writeFileSync(file, writeRequest("mcp:read"));
    const ran = await cli(["decide", "--data", operatorData, file]);
    assert.equal(ran.code, exitCodes.denied, ran.stderr);
    assert.match(
      ran.stdout,
      /^decision: deny\nreasons:\n {2}- scope_missing: requires one of the scopes \["mcp:write"\]\n {4}user: .+\nrisk: write \(from catalog\)\nstep-up: scopes mcp:write\ndecision id: /,
    );
  });

  test("--json: the AuthZEN response body, as the API answers it", async () => {
    const ran = await cli(
      ["decide", "--json", "--data", operatorData, "-"],
      {},
      writeRequest("mcp:read"),
    );
    assert.equal(ran.code, exitCodes.denied);
    const body = JSON.parse(ran.stdout) as {
      decision: boolean;
      context: { reasons: { code: string }[]; obligations: unknown; risk: unknown };
    };
    assert.equal(body.decision, false);
    assert.deepEqual(
      body.context.reasons.map((r) => r.code),
      ["scope_missing"],
    );
    assert.deepEqual(body.context.obligations, { step_up: { scopes: ["mcp:write"] } });
    assert.deepEqual(body.context.risk, { class: "write", source: "catalog" });
  });

  test("a request the API refuses: exit 1 with its code and field; with --json the error body", async () => {
    const readable = await cli(["decide"], {}, '{"subject": {"type": "user", "id": "a"}}');
    assert.equal(readable.code, exitCodes.failed);
    assert.match(
      readable.stderr,
      /^mcp-pdp decide: refused \(400 invalid_request\): .* at \/action\n$/,
    );
    assert.equal(readable.stdout, "");
    const json = await cli(["decide", "--json"], {}, "not json");
    assert.equal(json.code, exitCodes.failed);
    assert.equal((JSON.parse(json.stdout) as { code: string }).code, "invalid_json");
  });

  test("a request over the body limit is read no further than the limit, then refused 413", async () => {
    // An endless source: reading it whole would never end (attack 9: decide read everything first).
    const ran = await cli(["decide", "/dev/zero"], { PDP_MAX_BODY_BYTES: "4096" });
    assert.equal(ran.code, exitCodes.failed);
    assert.match(ran.stderr, /^mcp-pdp decide: refused \(413 body_too_large\)/m);
  });

  test("a request file that cannot be read: exit 1 naming it", async () => {
    const missing = join(scratch.dir, "no-request.json");
    const ran = await cli(["decide", missing]);
    assert.equal(ran.code, exitCodes.failed);
    assert.match(ran.stderr, /^mcp-pdp decide: cannot read the request: .*no-request\.json/);
  });

  test("with callers configured, decide is the caller whose key is in PDP_API_KEY", async () => {
    const apiKey = randomBytes(24).toString("base64url");
    const config = join(scratch.dir, "callers.json");
    writeFileSync(
      config,
      JSON.stringify({
        callers: [
          {
            name: "ci",
            api_key_sha256: [createHash("sha256").update(apiKey).digest("hex")],
            permissions: ["authzen"],
            assert_subject: true,
          },
        ],
      }),
    );
    const request = writeRequest("mcp:read mcp:write");
    const args = ["decide", "--config", config, "--data", operatorData];
    const anonymous = await cli(args, {}, request);
    assert.equal(anonymous.code, exitCodes.failed);
    assert.match(anonymous.stderr, /401 caller_unauthenticated/);
    const wrong = await cli(args, { PDP_API_KEY: "not-the-key" }, request);
    assert.match(wrong.stderr, /401 caller_unauthenticated/);
    const known = await cli(args, { PDP_API_KEY: apiKey }, request);
    assert.equal(known.code, exitCodes.ok, known.stderr);
    assert.match(known.stdout, /^decision: allow$/m);
  });

  test("the process: a request on stdin, answered without a listener, exit 3 on a deny", async () => {
    const ran = await executable(["decide", "--data", operatorData], {}, writeRequest("mcp:read"));
    assert.equal(ran.code, 3, ran.stderr);
    assert.match(ran.stdout, /^decision: deny$/m);
    assert.doesNotMatch(ran.stdout + ran.stderr, /listening/);
  });
});
