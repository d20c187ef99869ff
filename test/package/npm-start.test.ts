/**
 * The package as an operator meets it: `npm start` in a fresh checkout
 * (tracked files only, no dist/, this repository's node_modules linked in)
 * builds and serves, and SIGTERM to npm alone (what a supervisor sends to the
 * process it started) stops the server: nothing of the process group is left.
 * Then the built executable: `node dist/main.js --help` prints help and
 * starts nothing; `npm pack` ships the executable, the library entry and the
 * embedded bundle (not the sources or tests), and unpacked beside only its
 * runtime dependencies it checks, decides and imports.
 */
import assert from "node:assert/strict";
import { execFile, execFileSync, spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { copyFileSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { repoRoot, scratchDir } from "../support/opa.ts";
import { freePort } from "../support/ports.ts";

const run = promisify(execFile);
const scratch = scratchDir();
const checkout = join(scratch.dir, "checkout");

before(() => {
  // What a clone has: the tracked (and not ignored) files, nothing built.
  const files = execFileSync("git", ["ls-files", "--cached", "--others", "--exclude-standard"], {
    cwd: repoRoot,
    encoding: "utf8",
  })
    .split("\n")
    .filter((file) => file !== "");
  for (const file of files) {
    mkdirSync(join(checkout, dirname(file)), { recursive: true });
    try {
      copyFileSync(join(repoRoot, file), join(checkout, file));
    } catch {
      // Deleted in the working tree but still in the index: a clone of the commit would not have it either.
    }
  }
  symlinkSync(join(repoRoot, "node_modules"), join(checkout, "node_modules"));
});

after(() => {
  scratch.remove();
});

/** Whether any process of the group led by `pgid` is still alive. */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

test("npm start builds and serves; SIGTERM to npm stops the server, and no process of the group is left", async () => {
  const port = await freePort();
  const child = spawn("npm", ["start"], {
    cwd: checkout,
    env: {
      PATH: process.env.PATH ?? "",
      HOME: process.env.HOME ?? "",
      PORT: String(port),
      PDP_DRAIN_DELAY_MS: "0",
    },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const exited = once(child, "exit");
  const pgid = child.pid;
  assert.ok(pgid !== undefined);
  try {
    // The build (tsc) comes first: allow it a minute on a busy machine.
    const deadline = Date.now() + 90000;
    let ready = false;
    while (!ready && Date.now() < deadline && child.exitCode === null) {
      ready = await fetch(`http://127.0.0.1:${port}/ready`).then(
        (response) => response.status === 200,
        () => false,
      );
      if (!ready) await sleep(200);
    }
    assert.ok(ready, `npm start did not serve:\n${output}`);

    process.kill(pgid, "SIGTERM");
    await exited;
    const gone = Date.now() + 10000;
    while (groupAlive(pgid) && Date.now() < gone) await sleep(50);
    assert.equal(groupAlive(pgid), false, `a process outlived npm:\n${output}`);
    await assert.rejects(fetch(`http://127.0.0.1:${port}/ready`));
    assert.match(output, /"message":"stopped"/);
  } finally {
    if (groupAlive(pgid)) process.kill(-pgid, "SIGKILL");
  }
});

test("node dist/main.js --help prints the help and exits 0 without reading configuration or listening", async () => {
  const { stdout } = await run(process.execPath, [join("dist", "main.js"), "--help"], {
    cwd: checkout,
    timeout: 20000,
    // A configuration that serve would refuse: --help must not look at it.
    env: { PATH: process.env.PATH ?? "", PORT: "99999", PDP_CONFIG: "/nonexistent.yaml" },
  });
  assert.match(stdout, /^Usage: mcp-pdp \[COMMAND\] \[OPTIONS\]$/m);
  assert.match(stdout, /^ {2}decide /m);
});

test("npm pack ships the executable, the library entry and the embedded bundle, and they run installed with only the runtime dependencies", async () => {
  const { stdout } = await run(
    "npm",
    ["pack", "--json", "--silent", "--pack-destination", scratch.dir],
    { cwd: checkout, timeout: 120000 },
  );
  const [packed] = JSON.parse(stdout.slice(stdout.indexOf("["))) as {
    filename: string;
    files: { path: string }[];
  }[];
  assert.ok(packed);
  const paths = packed.files.map((file) => file.path);
  for (const shipped of [
    "dist/main.js",
    "dist/index.js",
    "dist/index.d.ts",
    "bundle/bundle.tar.gz",
    "package.json",
    "README.md",
  ]) {
    assert.ok(paths.includes(shipped), `${shipped} is not packed`);
  }
  assert.deepEqual(
    paths.filter((path) => /^(src|test|bench|scripts|rego|packages)\//.test(path)),
    [],
  );

  // Installed as npm would lay it out, next to exactly its runtime dependencies (linked from
  // this repository: the test stays offline). A devDependency the code needed would not resolve.
  const project = join(scratch.dir, "project");
  const installed = join(project, "node_modules", "mcp-pdp");
  mkdirSync(installed, { recursive: true });
  execFileSync("tar", [
    "-xzf",
    join(scratch.dir, packed.filename),
    "-C",
    installed,
    "--strip-components=1",
  ]);
  const manifest = JSON.parse(readFileSync(join(installed, "package.json"), "utf8")) as {
    dependencies: Record<string, string>;
  };
  for (const name of Object.keys(manifest.dependencies)) {
    const target = join(project, "node_modules", name);
    mkdirSync(dirname(target), { recursive: true });
    symlinkSync(join(repoRoot, "node_modules", name), target);
  }
  const env = { PATH: process.env.PATH ?? "" };
  const executable = join(installed, "dist", "main.js");
  const checked = await run(process.execPath, [executable, "check"], {
    cwd: project,
    env,
    timeout: 20000,
  });
  assert.match(checked.stdout, /^mcp-pdp check: ok$/m);
  assert.match(
    checked.stdout,
    new RegExp(`bundle +${installed.replace(/[.]/g, "\\.")}/bundle/bundle\\.tar\\.gz`),
  );
  const request = JSON.stringify({
    subject: { type: "user", id: "alice", properties: { scope: "mcp:read" } },
    action: { name: "ping" },
    resource: { type: "mcp_server", id: "files" },
  });
  const decided = spawnSync(process.execPath, [executable, "decide", "--json"], {
    cwd: project,
    env,
    input: request,
    encoding: "utf8",
    timeout: 20000,
  });
  assert.equal(decided.status, 0, decided.stderr);
  assert.equal((JSON.parse(decided.stdout) as { decision: boolean }).decision, true);
  writeFileSync(
    join(project, "library.mjs"),
    'const pdp = await import("mcp-pdp");\nconsole.log(typeof pdp.buildApp, typeof pdp.loadConfig);\n',
  );
  const imported = await run(process.execPath, ["library.mjs"], {
    cwd: project,
    env,
    timeout: 20000,
  });
  assert.equal(imported.stdout, "function function\n");
});
