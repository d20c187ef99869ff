/**
 * Log destinations that cannot be written, with the real process
 * (`node src/main.ts`): what the operating system refuses when
 * the file is opened (a directory, a missing parent, a path through a regular
 * file, a symlink loop, a 300-character name, no permission) is refused,
 * naming the variable and the errno, and stops the start with exit 1 before
 * anything listens;
 * what fails later (ENOSPC on /dev/full, a closed stdout pipe) is counted in
 * mcp_pdp_decision_records_dropped_total{reason="write_error"} and reported
 * in one diagnostic line, and the PDP keeps answering.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync, mkdirSync, openSync, closeSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { StartupError } from "../../src/errors.ts";
import { openLineWriter } from "../../src/observability/log-destination.ts";
import { repoRoot, scratchDir } from "../support/opa.ts";
import {
  freePort,
  jsonLines,
  scrape,
  startMain,
  total,
  waitFor,
  waitReady,
  type Json,
  type Spawned,
} from "./helpers.ts";
import { pdpArgs } from "../support/pdp-command.ts";

const scratch = scratchDir();
const running: Spawned[] = [];
after(async () => {
  for (const child of running) await child.stop();
  scratch.remove();
});

const regularFile = join(scratch.dir, "regular");
writeFileSync(regularFile, "");
const loop = join(scratch.dir, "loop-a");
symlinkSync(join(scratch.dir, "loop-b"), loop);
symlinkSync(loop, join(scratch.dir, "loop-b"));
const directory = join(scratch.dir, "a-directory");
mkdirSync(directory);

/** A path this process cannot open for writing, and the errno that says so (root ignores modes). */
function unwritablePath(): string | undefined {
  if (process.getuid?.() !== 0) {
    const readOnly = join(scratch.dir, "read-only");
    mkdirSync(readOnly, { mode: 0o500 });
    return join(readOnly, "decisions.jsonl");
  }
  // sysfs refuses writes even to root.
  const sysfs = "/sys/kernel/notes";
  try {
    closeSync(openSync(sysfs, "a"));
    return undefined;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EACCES" ? sysfs : undefined;
  }
}

const refusals: { name: string; path: string | undefined; errno: string }[] = [
  { name: "a directory", path: directory, errno: "EISDIR" },
  {
    name: "a missing parent directory",
    path: join(scratch.dir, "missing", "d.jsonl"),
    errno: "ENOENT",
  },
  { name: "a path under a regular file", path: join(regularFile, "d.jsonl"), errno: "ENOTDIR" },
  { name: "a symlink loop", path: join(loop, "d.jsonl"), errno: "ELOOP" },
  { name: "a 300-character name", path: join(scratch.dir, "x".repeat(300)), errno: "ENAMETOOLONG" },
  { name: "no permission", path: unwritablePath(), errno: "EACCES" },
];

interface Refusal {
  code: unknown;
  problems: string[];
  lines: Json[];
}

/** Starts the process expecting a refusal: exit 1 and one `cannot start` line, nothing listening. */
async function expectRefusal(env: Record<string, string>): Promise<Refusal> {
  const port = await freePort();
  const started = startMain({ PORT: String(port), ...env });
  running.push(started);
  const code = await Promise.race([
    started.exit,
    // Unreferenced: a pending 20 s timer would hold this file's process open after its tests.
    sleep(20000, undefined, { ref: false }).then(() => "still running after 20 s" as const),
  ]);
  if (code === "still running after 20 s") await started.stop();
  const lines = jsonLines(started.stdout());
  assert.equal(code, 1, `exit code\n${started.stdout()}\n${started.stderr()}`);
  assert.equal(started.stderr(), "", "no stack trace, no uncaught error");
  assert.ok(!lines.some((line) => line.message === "listening"), "refused before listening");
  const failure = lines.find((line) => line.message === "cannot start");
  assert.ok(failure !== undefined, started.stdout());
  return { code: failure.code, problems: failure.problems as string[], lines };
}

// Each refusal the operating system gives is checked on openLineWriter, the one function both
// destinations are opened with at startup (in-process: no process per errno); the real process
// is then shown to stop on such a refusal for each variable, exit 1 and nothing listening.
describe("a destination that cannot be opened for appending is refused, naming the errno", () => {
  for (const variable of ["PDP_DECISION_LOG", "PDP_DIAGNOSTIC_LOG"] as const) {
    for (const refusal of refusals) {
      test(`${variable}: ${refusal.name} (${refusal.errno})`, (t) => {
        const path = refusal.path;
        if (path === undefined) {
          t.skip("no path this user cannot write to");
          return;
        }
        assert.throws(
          () => openLineWriter(variable, { file: path }),
          (error: unknown) => {
            assert.ok(error instanceof StartupError, String(error));
            assert.equal(error.code, "log_unwritable");
            assert.equal(error.problems.length, 1);
            const problem = error.problems[0] ?? "";
            assert.ok(problem.startsWith(`${variable}=${path}`), problem);
            assert.match(problem, new RegExp(`\\b${refusal.errno}\\b`));
            return true;
          },
        );
        if (refusal.errno === "ENOENT") {
          assert.ok(!existsSync(join(scratch.dir, "missing")), "no directory was created");
        }
      });
    }
  }
});

describe("such a destination stops the start of the real process", () => {
  for (const variable of ["PDP_DECISION_LOG", "PDP_DIAGNOSTIC_LOG"] as const) {
    test(`${variable}: a directory (EISDIR): exit 1 before listening, the errno named`, async () => {
      const { code, problems } = await expectRefusal({ [variable]: directory });
      assert.equal(code, "log_unwritable");
      assert.equal(problems.length, 1);
      const problem = problems[0] ?? "";
      assert.ok(problem.startsWith(`${variable}=`), problem);
      assert.match(problem, /\bEISDIR\b/);
    });
  }
});

/** A PDP started with `env`, ready; the caller sends decisions. */
async function startReady(env: Record<string, string>): Promise<{ url: string; started: Spawned }> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  // One thread: each thread reports its own losses (rate-limited per thread), and these
  // tests count the report lines exactly. test/workers covers records from several.
  const started = startMain({ PORT: String(port), PDP_WORKERS: "1", ...env });
  running.push(started);
  await waitReady(url, started);
  return { url, started };
}

const ping = JSON.stringify({
  subject: { type: "user", id: "alice", properties: { scopes: ["mcp:read"] } },
  action: { name: "ping" },
  resource: { type: "mcp_server", id: "files" },
});

async function decide(url: string, count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    const response = await fetch(`${url}/access/v1/evaluation`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: ping,
    });
    const body = (await response.json()) as { decision: boolean };
    assert.equal(response.status, 200);
    assert.equal(body.decision, true);
  }
}

async function dropped(url: string, reason: string): Promise<number> {
  const { exposition } = await scrape(url);
  return total(exposition, "mcp_pdp_decision_records_dropped_total", { reason });
}

describe("at run time a destination that fails is counted and reported, never a crash", () => {
  test("PDP_DECISION_LOG=/dev/full: every record is counted as write_error, one diagnostic line", async () => {
    const { url, started } = await startReady({ PDP_DECISION_LOG: "/dev/full" });
    await decide(url, 20);
    const lost = await waitFor(
      "20 write errors",
      async () => ((await dropped(url, "write_error")) === 20 ? 20 : undefined),
      5000,
    );
    assert.equal(lost, 20);
    assert.equal(await dropped(url, "backpressure"), 0);
    const reports = jsonLines(started.stdout()).filter(
      (line) => line.message === "decision records lost",
    );
    // Rate-limited: the first failure at once, the rest summed into a later line (10 s on).
    assert.equal(reports.length, 1, started.stdout());
    const report = reports.at(0);
    assert.ok(report !== undefined);
    assert.equal(report.level, "error");
    assert.equal(report.destination, "/dev/full");
    assert.match(String(report.error), /ENOSPC/);
    await decide(url, 1);
    assert.equal(started.child.exitCode, null, "still running");
  });

  test("PDP_DIAGNOSTIC_LOG=/dev/full: the PDP runs; the loss is reported on stderr", async () => {
    const { url, started } = await startReady({
      PDP_DIAGNOSTIC_LOG: "/dev/full",
      PDP_DECISION_LOG: "off",
    });
    await decide(url, 3);
    const reports = await waitFor(
      "a line on stderr",
      () => {
        const lines = jsonLines(started.stderr()).filter(
          (line) => line.message === "diagnostic lines lost: PDP_DIAGNOSTIC_LOG cannot be written",
        );
        return lines.length > 0 ? lines : undefined;
      },
      5000,
      () => started.stderr(),
    );
    assert.equal(reports.length, 1, "rate-limited");
    assert.match(String(reports[0]?.error), /ENOSPC/);
    assert.equal(started.child.exitCode, null, "still running");
  });

  test("stdout itself is /dev/full (both logs on it, the defaults): answering, counted, reported on stderr", async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const full = openSync("/dev/full", "w");
    const child = spawn(process.execPath, pdpArgs(), {
      cwd: repoRoot,
      env: {
        PATH: process.env.PATH ?? "",
        HOME: process.env.HOME ?? "",
        PORT: String(port),
        PDP_WORKERS: "1",
      },
      stdio: ["ignore", full, "pipe"],
    });
    closeSync(full);
    let stderr = "";
    child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = once(child, "exit");
    try {
      await waitFor(
        `${url}/ready`,
        async () => ((await fetch(`${url}/ready`)).status === 200 ? true : undefined),
        20000,
        () => stderr,
      );
      await decide(url, 5);
      assert.equal(await dropped(url, "write_error"), 5);
      assert.equal(child.exitCode, null, `still running\n${stderr}`);
      const reports = jsonLines(stderr).filter(
        (line) => line.message === "diagnostic lines lost: PDP_DIAGNOSTIC_LOG cannot be written",
      );
      assert.equal(reports.length, 1, stderr);
    } finally {
      child.kill("SIGKILL");
      await exited;
    }
  });

  test("PDP_DECISION_LOG=stdout and the reader of stdout goes away (EPIPE): counted, still answering", async () => {
    const { url, started } = await startReady({
      PDP_DECISION_LOG: "stdout",
      PDP_DIAGNOSTIC_LOG: "stderr",
    });
    await decide(url, 1);
    // Close the read end of the child's stdout pipe: its next writes fail.
    started.child.stdout?.destroy();
    await decide(url, 10);
    const lost = await waitFor(
      "write errors",
      async () => {
        const count = await dropped(url, "write_error");
        return count >= 10 ? count : undefined;
      },
      5000,
      () => started.stderr(),
    );
    assert.ok(lost >= 10, `${lost} records counted as lost`);
    await decide(url, 1);
    assert.equal(started.child.exitCode, null, "still running");
    assert.ok(
      jsonLines(started.stderr()).some((line) => line.message === "decision records lost"),
      started.stderr(),
    );
  });
});
