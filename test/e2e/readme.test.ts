/**
 * The README's quick start and its curl examples, run as written.
 *
 * The quick start's shell block runs in bash in a scratch directory (with
 * `examples/` and `node_modules/` linked in), with one stand-in: `npm`, whose
 * `ci` is already done and whose `start` runs the built PDP (what `npm start`
 * runs after building it). PORT is set to a free port, and the examples'
 * `127.0.0.1:8180` becomes that port: nothing else is changed. Every curl
 * example must answer 200 with what the README shows next to it (a following
 * ```json block, or a `# {…}` comment; `…` stands for anything, ids are
 * random). The Identity section's configuration snippet is started the same
 * way, with a local JWKS endpoint and a key made for this run substituted.
 */
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { after, before, describe, test } from "node:test";
import { parse as parseYaml, stringify as toYaml } from "yaml";
import { JwksServer } from "../support/jwks-server.ts";
import { repoRoot, scratchDir } from "../support/opa.ts";
import { generateTestKey, mint } from "../support/tokens.ts";
import { apiKeyDigest } from "./support/pdp-process.ts";
import { freePort, spawnManaged, waitForHttp, type Managed } from "./support/processes.ts";
import { assertReadmeShows, readmeSnippets } from "./support/readme.ts";
import { pdpArgs, shellWords } from "../support/pdp-command.ts";

interface Block {
  lang: string;
  text: string;
  /** The `## ` section it is in. */
  section: string;
  /** The block after it, if any. */
  next: Block | undefined;
}

/** README.md's fenced code blocks with the section each is in. */
function readmeBlocks(): Block[] {
  const lines = readFileSync(join(repoRoot, "README.md"), "utf8").split("\n");
  const blocks: Block[] = [];
  let section = "";
  let open: { lang: string; lines: string[] } | undefined;
  for (const line of lines) {
    if (open !== undefined) {
      if (line === "```") {
        blocks.push({
          lang: open.lang,
          text: `${open.lines.join("\n")}\n`,
          section,
          next: undefined,
        });
        open = undefined;
      } else {
        open.lines.push(line);
      }
      continue;
    }
    const fence = /^```([a-z]*)$/.exec(line);
    if (fence !== null) open = { lang: fence[1] ?? "", lines: [] };
    else if (line.startsWith("## ")) section = line.slice(3);
  }
  blocks.forEach((block, index) => {
    block.next = blocks[index + 1];
  });
  return blocks;
}

const blocks = readmeBlocks();
const curlBlocks = blocks.filter((b) => b.lang === "sh" && /^curl /m.test(b.text));
const quickStartSections = ["Quick start", "Asking for a decision"];
const identitySection = "Identity: tokens and callers";
const proxySection = "Putting it behind a proxy";

test("every curl example of the README is run by this file", () => {
  assert.ok(curlBlocks.length >= 5, "the README lost its curl examples");
  for (const block of curlBlocks) {
    assert.ok(
      [...quickStartSections, identitySection, proxySection].includes(block.section),
      `a curl example in "${block.section}" is run by no test:\n${block.text}`,
    );
  }
});

/** One curl command of a block and the answer the README shows for it. */
interface Expectation {
  command: string;
  answer: unknown;
}

/**
 * The commands of a block (each starts a line with `curl `) and their shown
 * answers: a `# {…}` comment before the next command, or, for a lone command,
 * the ```json block that follows.
 */
function expectationsOf(block: Block): Expectation[] {
  const lines = block.text.split("\n");
  const starts = lines.flatMap((line, index) => (line.startsWith("curl ") ? [index] : []));
  return starts.map((start, k) => {
    const span = lines.slice(start, starts[k + 1] ?? lines.length);
    const comment = span.map((line) => /# (\{.*\})\s*$/.exec(line)?.[1]).find(Boolean);
    let answer: unknown;
    if (comment !== undefined) answer = JSON.parse(comment);
    else if (starts.length === 1 && block.next?.lang === "json")
      answer = JSON.parse(block.next.text);
    return { command: span.join("\n"), answer };
  });
}

const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * Where `actual` differs from what the README shows: every key shown must
 * match (more keys may exist), lists match element by element, a string with
 * `…` is a pattern, and a shown id (a UUID or a hex prefix with `…`) stands
 * for any UUID.
 */
function differences(shown: unknown, actual: unknown, path = ""): string[] {
  if (typeof shown === "string") {
    if ((uuid.test(shown) || /^[0-9a-f-]+…$/.test(shown)) && typeof actual === "string") {
      return uuid.test(actual) ? [] : [`${path}: ${actual} is not an id`];
    }
    if (shown.includes("…")) {
      const pattern = new RegExp(
        `^${shown
          .split("…")
          .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"))
          .join(".*")}$`,
        "s",
      );
      return typeof actual === "string" && pattern.test(actual)
        ? []
        : [`${path}: ${JSON.stringify(actual)} does not match ${JSON.stringify(shown)}`];
    }
  }
  if (Array.isArray(shown)) {
    if (!Array.isArray(actual) || actual.length !== shown.length) {
      return [`${path}: ${JSON.stringify(actual)} is not like ${JSON.stringify(shown)}`];
    }
    return shown.flatMap((item, i) => differences(item, actual[i], `${path}[${i}]`));
  }
  if (typeof shown === "object" && shown !== null) {
    if (typeof actual !== "object" || actual === null) return [`${path}: missing`];
    return Object.entries(shown).flatMap(([key, value]) =>
      differences(value, (actual as Record<string, unknown>)[key], `${path}.${key}`),
    );
  }
  return shown === actual
    ? []
    : [`${path}: ${JSON.stringify(actual)} is not ${JSON.stringify(shown)}`];
}

/**
 * What the README says of the delete_repo example: outside 07:00–19:00 UTC the
 * example data adds `outside_hours`, and no step-up is offered. The shown
 * answer is the one within those hours.
 */
function outsideHoursVariant(shown: unknown): unknown {
  const answer = structuredClone(shown) as {
    context: { reasons: { code: string }[]; obligations: unknown };
  };
  answer.context.reasons = [...answer.context.reasons, { code: "outside_hours" }].sort((a, b) =>
    a.code.localeCompare(b.code),
  );
  answer.context.obligations = {};
  return answer;
}

const withinHours = (ms: number) => {
  const hour = new Date(ms).getUTCHours();
  return hour >= 7 && hour < 19;
};

/**
 * Runs one block with bash against the PDP on `port`; returns each curl's
 * status and body. Asynchronously: the JWKS endpoint runs in this process.
 */
async function runCurl(block: Block, port: number, env: Record<string, string>) {
  // Only the status is added, after each answer: the commands run as written.
  const wrapper = `curl() { command curl --max-time 10 -w '\\n@@status=%{http_code}@@\\n' "$@"; }\n`;
  const script = wrapper + block.text.replaceAll("127.0.0.1:8180", `127.0.0.1:${port}`);
  const { stdout } = await promisify(execFile)("bash", ["-c", script], {
    encoding: "utf8",
    timeout: 30000,
    env: { PATH: process.env.PATH ?? "", ...env },
  });
  const parts = stdout.split(/\n@@status=(\d+)@@\n/);
  const results: { status: number; body: string }[] = [];
  for (let i = 0; i + 1 < parts.length; i += 2) {
    results.push({ status: Number(parts[i + 1]), body: parts[i] ?? "" });
  }
  return results;
}

/** Asserts the answers of one block: 200, JSON, and what the README shows. */
async function checkBlock(block: Block, port: number, env: Record<string, string>): Promise<void> {
  const expectations = expectationsOf(block);
  const startedMs = Date.now();
  const results = await runCurl(block, port, env);
  const endedMs = Date.now();
  assert.equal(results.length, expectations.length, `one answer per curl in:\n${block.text}`);
  expectations.forEach((expectation, k) => {
    const result = results[k];
    assert.ok(result !== undefined);
    assert.equal(result.status, 200, `${expectation.command}\n→ ${result.body}`);
    const actual = JSON.parse(result.body) as unknown;
    if (expectation.answer === undefined) return;
    let problems = differences(expectation.answer, actual);
    if (problems.length > 0 && block.text.includes("delete_repo")) {
      const hours = [withinHours(startedMs), withinHours(endedMs)];
      // At an hour boundary either answer is right.
      if (!hours[0] || !hours[1]) {
        const variant = differences(outsideHoursVariant(expectation.answer), actual);
        problems = hours[0] === hours[1] || variant.length === 0 ? variant : problems;
      }
    }
    assert.deepEqual(problems, [], `${expectation.command}\n→ ${result.body}`);
  });
}

describe("the README's quick start, as written", () => {
  const scratch = scratchDir();
  const quickStart = blocks.find(
    (b) => b.section === "Quick start" && b.lang === "sh" && b.text.includes("npm start"),
  );
  let pdp: Managed | undefined;
  let port = 0;
  let apiKey = "";

  before(async () => {
    assert.ok(quickStart, "the README lost its quick start");
    const bin = join(scratch.dir, "bin");
    execFileSync("mkdir", ["-p", bin]);
    // npm's stand-in: `npm ci` is done; `npm start` runs what its build would, and
    // records the key the block exported (the block runs in its own shell).
    writeFileSync(
      join(bin, "npm"),
      `#!/bin/sh
case "$1" in
  ci) exit 0 ;;
  start) printf %s "$PDP_API_KEY" > "$QUICKSTART_KEY_FILE"
         exec ${shellWords([process.execPath, ...pdpArgs()])} ;;
  *) echo "npm $* is not part of the quick start" >&2; exit 2 ;;
esac
`,
    );
    chmodSync(join(bin, "npm"), 0o755);
    symlinkSync(join(repoRoot, "examples"), join(scratch.dir, "examples"));
    symlinkSync(join(repoRoot, "node_modules"), join(scratch.dir, "node_modules"));
    port = await freePort();
    const keyFile = join(scratch.dir, "api-key");
    pdp = spawnManaged("quick start", "bash", ["-eo", "pipefail", "-c", quickStart.text], {
      cwd: scratch.dir,
      env: {
        PATH: `${bin}:${process.env.PATH ?? ""}`,
        HOME: process.env.HOME ?? "",
        PORT: String(port),
        // Not the block's business: stopped at teardown, without the 5 s readiness grace.
        PDP_DRAIN_DELAY_MS: "0",
        QUICKSTART_KEY_FILE: keyFile,
      },
    });
    await waitForHttp(`http://127.0.0.1:${port}/ready`, pdp);
    apiKey = readFileSync(keyFile, "utf8");
    // What the block wrote: only the digest of the key.
    const config = readFileSync(join(scratch.dir, "pdp-config.yaml"), "utf8");
    assert.ok(config.includes(apiKeyDigest(apiKey)) && !config.includes(apiKey));
  });

  after(async () => {
    await pdp?.stop();
    scratch.remove();
  });

  for (const block of curlBlocks.filter((b) => quickStartSections.includes(b.section))) {
    const first = block.text.split("\n")[0] ?? "";
    test(`${first.trim()} (${block.text.length} characters)`, async () => {
      await checkBlock(block, port, { PDP_API_KEY: apiKey });
    });
  }

  test("without the key the examples get 401: caller authentication is on", async () => {
    const block = curlBlocks.find((b) => b.section === "Asking for a decision");
    assert.ok(block);
    const [result] = await runCurl(block, port, { PDP_API_KEY: "" });
    assert.equal(result?.status, 401, result?.body);
    assert.match(result.body, /caller_unauthenticated/);
  });
});

/**
 * A section whose configuration snippet (a YAML block with `issuers:` and
 * `callers:`, and `marker` in it) is started as written, with two stand-ins: the
 * JWKS URL (a local endpoint) and the caller's placeholder digest. Each of the
 * section's curl examples then runs with that caller's key and a token for
 * `files` (mcp:read, signed in a minute ago) and must answer as shown.
 */
function describeConfiguredSection(section: string, marker: string): void {
  describe(`the README's ${section} section, as written`, () => {
    const scratch = scratchDir();
    const configBlock = blocks.find(
      (b) =>
        b.section === section &&
        b.lang === "yaml" &&
        b.text.includes("issuers:") &&
        b.text.includes("callers:") &&
        b.text.includes(marker),
    );
    const sectionCurls = curlBlocks.filter((b) => b.section === section);
    const apiKey = randomBytes(32).toString("base64");
    let jwks: JwksServer | undefined;
    let pdp: Managed | undefined;
    let port = 0;
    let accessToken = "";

    before(async () => {
      assert.ok(configBlock, `the ${section} section lost its configuration`);
      const config = parseYaml(configBlock.text) as {
        issuers: { issuer: string; jwks_uri: string }[];
        servers: Record<string, { resource: string }>;
        callers: { api_key_sha256: string[] }[];
      };
      const issuer = config.issuers[0];
      const files = config.servers.files;
      const caller = config.callers[0];
      assert.ok(issuer && files && caller && caller.api_key_sha256.length === 1);
      const key = await generateTestKey("ES256");
      jwks = await JwksServer.start([key.publicJwk]);
      issuer.jwks_uri = jwks.url;
      caller.api_key_sha256 = [apiKeyDigest(apiKey)];
      const configFile = join(scratch.dir, "pdp-config.yaml");
      writeFileSync(configFile, toYaml(config));
      const now = Math.floor(Date.now() / 1000);
      accessToken = await mint(key, {
        iss: issuer.issuer,
        sub: "alice",
        aud: files.resource,
        scope: "mcp:read",
        iat: now,
        exp: now + 300,
        auth_time: now - 60,
      });
      port = await freePort();
      pdp = spawnManaged("pdp", process.execPath, pdpArgs(), {
        cwd: repoRoot,
        env: {
          PATH: process.env.PATH ?? "",
          HOME: process.env.HOME ?? "",
          PORT: String(port),
          PDP_WORKERS: "1",
          PDP_DRAIN_DELAY_MS: "0",
          PDP_CONFIG: configFile,
          PDP_DATA: join(repoRoot, "examples", "operator-data.yaml"),
        },
      });
      await waitForHttp(`http://127.0.0.1:${port}/ready`, pdp);
    });

    after(async () => {
      await pdp?.stop();
      await jwks?.close();
      scratch.remove();
    });

    test("the section has its curl examples", () => {
      assert.ok(sectionCurls.length > 0, `the ${section} section lost its curl examples`);
    });
    for (const block of sectionCurls) {
      const first = block.text.split("\n")[0] ?? "";
      test(`${first.trim()} (${block.text.length} characters)`, async () => {
        await checkBlock(block, port, { PDP_API_KEY: apiKey, ACCESS_TOKEN: accessToken });
      });
    }
  });
}

describeConfiguredSection(identitySection, "servers:");
describeConfiguredSection(proxySection, "speaks_mcp_2026_07_28: true");

test("the Envoy snippet (not run: no Envoy here) parses, presents a client certificate, and its server is behind envoy", () => {
  assertReadmeShows("envoy");
  assertReadmeShows("envoyServers");
  const parsed = parseYaml(readmeSnippets.envoy) as {
    clusters: { name: string; transport_socket: unknown }[];
  };
  const cluster = parsed.clusters.find((c) => c.name === "mcp_pdp");
  assert.match(JSON.stringify(cluster?.transport_socket), /tls_certificates/);
  const servers = parseYaml(readmeSnippets.envoyServers) as {
    servers: Record<string, { proxy?: string }>;
  };
  assert.equal(servers.servers.files?.proxy, "envoy");
});

describe("the README's mcp-pdp command section, as written", () => {
  const section = "Installing and the `mcp-pdp` command";
  const scratch = scratchDir();
  after(() => {
    scratch.remove();
  });

  /**
   * Runs a block with bash in a scratch directory (examples/ and
   * node_modules/ linked in), with one stand-in: `npx mcp-pdp`, which runs
   * the PDP executable as every test runs it (test/support/pdp-command.ts). Returns the
   * output (stderr after stdout when it fails) and the exit code.
   */
  async function runBlock(text: string): Promise<{ stdout: string; code: number }> {
    const bin = join(scratch.dir, "bin");
    execFileSync("mkdir", ["-p", bin]);
    writeFileSync(
      join(bin, "npx"),
      `#!/bin/sh
[ "$1" = mcp-pdp ] || { echo "npx $* is not part of this section" >&2; exit 2; }
shift
exec ${shellWords([process.execPath, ...pdpArgs()])} "$@"
`,
    );
    chmodSync(join(bin, "npx"), 0o755);
    for (const linked of ["examples", "node_modules"]) {
      try {
        symlinkSync(join(repoRoot, linked), join(scratch.dir, linked));
      } catch {
        // linked by an earlier block
      }
    }
    try {
      const stdout = await promisify(execFile)("bash", ["-c", text], {
        cwd: scratch.dir,
        encoding: "utf8",
        timeout: 30000,
        env: { PATH: `${bin}:${process.env.PATH ?? ""}`, HOME: process.env.HOME ?? "" },
      });
      return { stdout: stdout.stdout, code: 0 };
    } catch (error) {
      const failed = error as { stdout?: string; stderr?: string; code?: number };
      return { stdout: `${failed.stdout ?? ""}${failed.stderr ?? ""}`, code: failed.code ?? -1 };
    }
  }

  test("`npx mcp-pdp --help` prints the help the README shows", async () => {
    const block = blocks.find(
      (b) => b.section === section && b.lang === "sh" && b.text === "npx mcp-pdp --help\n",
    );
    assert.ok(block?.next?.lang === "text", "the README lost its help output");
    const ran = await runBlock(block.text);
    assert.equal(ran.code, 0);
    assert.equal(ran.stdout, block.next.text);
  });

  test("the `mcp-pdp decide < request.json` example prints what the README shows, exit code 3", async () => {
    const block = blocks.find(
      (b) => b.section === section && b.lang === "sh" && b.text.includes("mcp-pdp decide"),
    );
    assert.ok(block?.next?.lang === "text", "the README lost its decide example");
    assert.match(block.text, /# exit code 3$/m);
    const ran = await runBlock(block.text);
    assert.equal(ran.code, 3, ran.stdout);
    // The decision id is new on every run.
    const uuidLine = /^decision id: [0-9a-f-]{36}$/m;
    assert.match(block.next.text, uuidLine);
    assert.match(ran.stdout, uuidLine);
    assert.equal(
      ran.stdout.replace(uuidLine, "decision id: …"),
      block.next.text.replace(uuidLine, "decision id: …"),
    );
  });
});
