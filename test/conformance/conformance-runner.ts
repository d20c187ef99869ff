/**
 * The MCP conformance suite (`@modelcontextprotocol/conformance`, its own
 * CLI as a child process) run against one MCP endpoint, and its results read
 * back from the files it writes: `<out>/server-<scenario>-<timestamp>/checks.json`.
 * Server mode only needs the URL of the server under test (127.0.0.1 here).
 */
import { execFile } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { repoRoot } from "../support/opa.ts";

const conformanceCli = join(
  repoRoot,
  "node_modules",
  "@modelcontextprotocol",
  "conformance",
  "dist",
  "index.js",
);

/** One check of a scenario, as the suite writes it. */
export interface ConformanceCheck {
  id: string;
  name: string;
  description: string;
  /** SUCCESS, FAILURE, WARNING, INFO (the suite's words). */
  status: string;
  errorMessage?: string;
  details?: Record<string, unknown>;
}

/** What one whole run of the suite left: each scenario's checks, and how the CLI ended. */
export interface ConformanceRun {
  exitCode: number | null;
  output: string;
  scenarios: Map<string, ConformanceCheck[]>;
}

interface CliResult {
  exitCode: number | null;
  stdout: string;
  stderr: string;
}

function runCli(args: string[], timeoutMs: number): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [conformanceCli, ...args],
      {
        cwd: repoRoot,
        env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "" },
        timeout: timeoutMs,
        killSignal: "SIGKILL",
        maxBuffer: 16 * 1024 * 1024,
      },
      (error, stdout, stderr) => {
        if (error !== null && typeof error.code !== "number") {
          // Not an exit code (killed at the deadline, or never started): the run did not happen.
          reject(new Error(`conformance ${args.join(" ")}: ${error.message}\n${stdout}${stderr}`));
          return;
        }
        resolve({ exitCode: error === null ? 0 : (error.code as number), stdout, stderr });
      },
    );
  });
}

/** The server scenarios the installed suite knows (`conformance list --server`), every suite. */
export async function listServerScenarios(): Promise<string[]> {
  const { exitCode, stdout, stderr } = await runCli(["list", "--server"], 30_000);
  if (exitCode !== 0) throw new Error(`conformance list failed (${String(exitCode)}): ${stderr}`);
  return [...stdout.matchAll(/^\s+- (\S+)/gm)].map((match) => match[1] ?? "");
}

/** `server-<scenario>-2026-12-02T03-36-15-146Z` → `<scenario>`. */
const resultDirectory = /^server-(.+)-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z$/;

/**
 * Runs every server scenario of every suite (`--suite all`: the active ones and
 * those still pending upstream) against `url`, results into `outDir`.
 */
export async function runServerScenarios(
  url: string,
  outDir: string,
  timeoutMs: number,
): Promise<ConformanceRun> {
  const { exitCode, stdout, stderr } = await runCli(
    ["server", "--url", url, "--suite", "all", "--output-dir", outDir],
    timeoutMs,
  );
  const scenarios = new Map<string, ConformanceCheck[]>();
  for (const entry of readdirSync(outDir)) {
    const scenario = resultDirectory.exec(entry)?.[1];
    if (scenario === undefined) throw new Error(`unexpected entry in ${outDir}: ${entry}`);
    if (scenarios.has(scenario)) throw new Error(`scenario ${scenario} ran twice in ${outDir}`);
    const checks = JSON.parse(
      readFileSync(join(outDir, entry, "checks.json"), "utf8"),
    ) as ConformanceCheck[];
    scenarios.set(scenario, checks);
  }
  return { exitCode, output: `${stdout}${stderr}`, scenarios };
}

/**
 * What a check says, without what differs between any two runs: timestamps,
 * ports, session and event ids live in `details` and in some descriptions
 * (`Received SSE event (id: …)`); the id, name, status and error message are
 * the result.
 */
export function resultOf(check: ConformanceCheck): {
  id: string;
  name: string;
  status: string;
  errorMessage: string | undefined;
} {
  return {
    id: check.id,
    name: check.name,
    status: check.status,
    errorMessage: check.errorMessage,
  };
}

/** A scenario's checks counted by status, e.g. `{SUCCESS: 5}`. */
export function statusCounts(checks: ConformanceCheck[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const check of checks) counts[check.status] = (counts[check.status] ?? 0) + 1;
  return counts;
}
