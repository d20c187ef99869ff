/**
 * Shared by the observability tests: reading the Prometheus text exposition,
 * the metric families metrics.ts declares, raw HTTP requests, and the real PDP
 * process (`mcp-pdp`, see test/support/pdp-command.ts) with its output captured.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { request as httpRequest, type IncomingHttpHeaders } from "node:http";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { metricsPrefix } from "../../src/observability/metrics.ts";
import { repoRoot } from "../support/opa.ts";
import { pdpArgs } from "../support/pdp-command.ts";

export type Json = Record<string, unknown>;

export const operatorData = join(repoRoot, "examples", "operator-data.yaml");

export function sha256Hex(text: string): string {
  return createHash("sha256").update(text, "utf8").digest("hex");
}

// ---------------------------------------------------------------- exposition

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Exposition {
  /** Family name → `counter`, `gauge`, `histogram`, … from the `# TYPE` lines. */
  types: Map<string, string>;
  help: Map<string, string>;
  samples: Sample[];
}

const sampleLine = /^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?$/;
const labelPair = /([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

function unescapeLabel(value: string): string {
  return value.replace(/\\(.)/g, (_match, char: string) => (char === "n" ? "\n" : char));
}

function numberOf(text: string): number {
  if (text === "+Inf") return Number.POSITIVE_INFINITY;
  if (text === "-Inf") return Number.NEGATIVE_INFINITY;
  return Number(text);
}

/** Parses the Prometheus text format (0.0.4) as prom-client writes it. */
export function parseExposition(text: string): Exposition {
  const types = new Map<string, string>();
  const help = new Map<string, string>();
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    const meta = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
    if (meta !== null) {
      const [, kind, name, rest] = meta;
      if (name !== undefined) (kind === "TYPE" ? types : help).set(name, rest ?? "");
      continue;
    }
    if (line.startsWith("#")) continue;
    const match = sampleLine.exec(line);
    assert.ok(match !== null, `not an exposition line: ${line}`);
    const [, name, labelText, value] = match;
    const labels: Record<string, string> = {};
    for (const pair of (labelText ?? "").matchAll(labelPair)) {
      const [, label, raw] = pair;
      if (label !== undefined) labels[label] = unescapeLabel(raw ?? "");
    }
    samples.push({ name: name ?? "", labels, value: numberOf(value ?? "") });
  }
  return { types, help, samples };
}

/** The family a sample belongs to: `x_bucket`, `x_sum`, `x_count` of a histogram are `x`. */
export function familyOf(exposition: Exposition, sampleName: string): string {
  if (exposition.types.has(sampleName)) return sampleName;
  for (const suffix of ["_bucket", "_sum", "_count"]) {
    if (!sampleName.endsWith(suffix)) continue;
    const base = sampleName.slice(0, -suffix.length);
    const type = exposition.types.get(base);
    if (type === "histogram" || type === "summary") return base;
  }
  return sampleName;
}

/** Number of samples (series) per family. */
export function seriesPerFamily(exposition: Exposition): Map<string, number> {
  const counts = new Map<string, number>();
  for (const sample of exposition.samples) {
    const family = familyOf(exposition, sample.name);
    counts.set(family, (counts.get(family) ?? 0) + 1);
  }
  return counts;
}

function matches(sample: Sample, labels: Record<string, string>): boolean {
  return Object.entries(labels).every(([name, value]) => sample.labels[name] === value);
}

/** The sum of every sample of `name` whose labels include `labels` (0 when there is none). */
export function total(
  exposition: Exposition,
  name: string,
  labels: Record<string, string> = {},
): number {
  return exposition.samples
    .filter((sample) => sample.name === name && matches(sample, labels))
    .reduce((sum, sample) => sum + sample.value, 0);
}

/** The samples of `name`, each as `labels → value`, for deepEqual comparisons. */
export function seriesOf(exposition: Exposition, name: string): Sample[] {
  return exposition.samples.filter((sample) => sample.name === name);
}

/** Every value the label takes in the samples of `name`. */
export function labelValues(exposition: Exposition, name: string, label: string): Set<string> {
  const values = new Set<string>();
  for (const sample of seriesOf(exposition, name)) {
    const value = sample.labels[label];
    if (value !== undefined) values.add(value);
  }
  return values;
}

/**
 * `{labels-as-JSON → value}` of a counter, e.g. `{'{"outcome":"allow","risk":"read"}': 2}`,
 * the label names in the order given.
 */
export function countsBy(
  exposition: Exposition,
  name: string,
  labelNames: readonly string[],
): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const sample of seriesOf(exposition, name)) {
    const key = JSON.stringify(Object.fromEntries(labelNames.map((l) => [l, sample.labels[l]])));
    counts[key] = (counts[key] ?? 0) + sample.value;
  }
  return counts;
}

/** A key of countsBy. */
export function key(labels: Record<string, string>): string {
  return JSON.stringify(labels);
}

/**
 * Every metric family src/observability/metrics.ts declares (its `name("…")`
 * calls), with the prefix: read from the source, so a new metric is covered
 * by the tests without editing them.
 */
export function declaredFamilies(): string[] {
  const source = readFileSync(join(repoRoot, "src", "observability", "metrics.ts"), "utf8");
  const names = [...source.matchAll(/\bname\("([a-z0-9_]+)"\)/g)].map(
    (match) => `${metricsPrefix}${match[1] ?? ""}`,
  );
  assert.ok(names.length >= 10, `expected metrics.ts to declare its metrics with name("…")`);
  return names;
}

/** GET /metrics and parse it; fails unless the answer is a 200 exposition. */
export async function scrape(
  url: string,
  headers: Record<string, string> = {},
): Promise<{ text: string; exposition: Exposition }> {
  const response = await fetch(`${url}/metrics`, { headers });
  const text = await response.text();
  assert.equal(response.status, 200, text);
  assert.match(response.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
  return { text, exposition: parseExposition(text) };
}

// ---------------------------------------------------------------- raw HTTP

export interface RawRequest {
  method: string;
  path: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
}

export interface RawAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
}

/**
 * Sends exactly this request with node:http (any method, our own Host, the
 * path as written: fetch would resolve dot segments), on a fresh connection;
 * fails if no answer comes within 10 s.
 */
export function rawRequest(url: string, request: RawRequest): Promise<RawAnswer> {
  const { hostname, port } = new URL(url);
  const body =
    request.body === undefined
      ? undefined
      : Buffer.isBuffer(request.body)
        ? request.body
        : Buffer.from(request.body, "utf8");
  const headers: Record<string, string> = { ...request.headers };
  if (body !== undefined) headers["content-length"] = String(body.length);
  return new Promise((resolve, reject) => {
    const outgoing = httpRequest(
      {
        host: hostname,
        port,
        method: request.method,
        path: request.path,
        headers,
        agent: false,
        timeout: 10_000,
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("error", reject);
        response.on("end", () => {
          resolve({
            status: response.statusCode ?? 0,
            headers: response.headers,
            text: Buffer.concat(chunks).toString("utf8"),
          });
        });
      },
    );
    outgoing.on("timeout", () => {
      outgoing.destroy(new Error(`${request.method} ${request.path}: no answer within 10 s`));
    });
    outgoing.on("error", reject);
    if (body !== undefined) outgoing.write(body);
    outgoing.end();
  });
}

/** The first value of a response header. */
export function headerOf(answer: RawAnswer, name: string): string | undefined {
  const value = answer.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

// ---------------------------------------------------------------- waiting

/**
 * Polls `probe` until it returns a value other than undefined, at most
 * `timeoutMs`; on timeout fails with `explain()` (e.g. the logs of whatever
 * was waited for).
 */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs: number,
  explain: () => string = () => "",
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    await sleep(100);
  }
  const last = lastError instanceof Error ? `\nlast error: ${lastError.message}` : "";
  return assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}${last}\n${explain()}`);
}

// ---------------------------------------------------------------- processes

export interface Spawned {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exit: Promise<number | null>;
  /** SIGTERM, then SIGKILL if it has not exited within `graceMs`; resolves once it exited. */
  stop: (graceMs?: number) => Promise<void>;
}

/** Spawns a command with its output captured (no shell; the environment is exactly `env`). */
export function spawnCaptured(command: string, args: string[], env: Json): Spawned {
  const child = spawn(command, args, {
    cwd: repoRoot,
    env: env as NodeJS.ProcessEnv,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const exit = new Promise<number | null>((resolve) => {
    child.on("error", () => {
      resolve(null);
    });
    child.on("exit", (code) => {
      resolve(code);
    });
  });
  let exited = false;
  void exit.then(() => (exited = true));
  const stop = async (graceMs = 10000): Promise<void> => {
    if (exited || child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
    await exit;
    clearTimeout(timer);
  };
  return { child, stdout: () => stdout, stderr: () => stderr, exit, stop };
}

/** The real PDP (test/support/pdp-command.ts) with `env` (plus PATH and HOME). */
export function startMain(env: Record<string, string>): Spawned {
  return spawnCaptured(process.execPath, pdpArgs(), {
    PATH: process.env.PATH ?? "",
    HOME: process.env.HOME ?? "",
    // Stopped at teardown: no readiness grace, unless a test asks for one.
    PDP_DRAIN_DELAY_MS: "0",
    // One thread unless a test asks for more: the feature under test, not the worker pool
    // (test/workers), and no worker's start to pay for in every test.
    PDP_WORKERS: "1",
    ...env,
  });
}

/** Waits (20 s at most) for GET /ready to answer 200; fails with the process output otherwise. */
export async function waitReady(url: string, started: Spawned): Promise<void> {
  await waitFor(
    `${url}/ready`,
    async () => ((await fetch(`${url}/ready`)).status === 200 ? true : undefined),
    20000,
    () => `stdout:\n${started.stdout()}\nstderr:\n${started.stderr()}`,
  );
}

/** The JSON lines of a log text (every line must be JSON). */
export function jsonLines(text: string): Json[] {
  return text
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => JSON.parse(line) as Json);
}

export { freePort } from "../support/ports.ts";
