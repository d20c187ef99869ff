/**
 * The real PDP process (`mcp-pdp`, see pdp-command.ts) for the transport
 * tests: output captured, every wait bounded, always stopped (SIGKILL when a
 * test already failed or the process ignores SIGTERM).
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { setTimeout as sleep } from "node:timers/promises";
import { repoRoot } from "./opa.ts";
import { pdpArgs } from "./pdp-command.ts";

export interface MainProcess {
  child: ChildProcess;
  output: () => string;
  /** Parsed JSON log lines so far. */
  logLines: () => Record<string, unknown>[];
  exit: Promise<number | null>;
  exited: () => boolean;
  /** SIGKILL unless it already exited. */
  kill: () => Promise<void>;
}

/**
 * Starts the PDP with exactly `env` (plus PATH and HOME); `nodeArgs` go before
 * the script, `args` (the command line: `serve --data F`, …) after it.
 */
export function startMain(
  env: Record<string, string>,
  nodeArgs: string[] = [],
  args: string[] = [],
): MainProcess {
  const child = spawn(process.execPath, pdpArgs(args, nodeArgs), {
    cwd: repoRoot,
    // One thread unless a test asks for more (test/workers tests the worker pool).
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", PDP_WORKERS: "1", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
  let done = false;
  const exit = once(child, "exit").then(([code]) => {
    done = true;
    return code as number | null;
  });
  return {
    child,
    output: () => output,
    logLines: () =>
      output
        .split("\n")
        .filter((line) => line.startsWith("{"))
        .map((line) => JSON.parse(line) as Record<string, unknown>),
    exit,
    exited: () => done,
    kill: async () => {
      if (done) return;
      child.kill("SIGKILL");
      await exit;
    },
  };
}

/** Polls `probe` every 50 ms until it returns true, at most `timeoutMs`; fails with the output. */
export async function waitUntil(
  what: string,
  probe: () => Promise<boolean> | boolean,
  timeoutMs: number,
  started?: MainProcess,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      if (await probe()) return;
    } catch {
      // not there yet
    }
    if (started?.exited() === true) break;
    await sleep(50);
  }
  assert.fail(`gave up waiting for ${what}\n${started?.output() ?? ""}`);
}

/** Waits until the process has logged a line with this message. */
export function waitForLog(started: MainProcess, message: string, timeoutMs = 20000) {
  return waitUntil(
    `log line "${message}"`,
    () => started.logLines().some((line) => line.message === message),
    timeoutMs,
    started,
  );
}
