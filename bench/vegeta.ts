/**
 * One constant-rate run with vegeta (open model) against a loopback server:
 * per-request latencies, how closely the sends kept to the schedule, and CPU
 * accounting, in the same shape as an autocannon run (LoadResult).
 *
 * vegeta's pacer makes request k (k = 0, 1, …) due at start + (k + 1) / rate
 * and hands it to an idle worker; when every worker is busy it starts another
 * one, so a slow response never holds back the next send. A result's
 * timestamp is taken as a worker picks the request up, just before it is
 * built and sent, and its latency runs from that timestamp to the end of
 * reading the response body. See lib/attack.go and lib/pacer.go of
 * github.com/tsenart/vegeta/v12.
 */
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { LoadResult } from "./load.ts";
import { cpuSeconds, reapedChildrenCpuSeconds, type Server } from "./processes.ts";
import { SampleBuffer, type Percentiles } from "./report.ts";

export interface PacedSpec {
  /** Path of the vegeta binary (bench/ensure-vegeta.sh). */
  vegeta: string;
  server: Server;
  path: string;
  /** JSON request body, sent as POST. */
  body: string;
  /** Requests per second. */
  rate: number;
  durationS: number;
  /** Core to pin vegeta to with taskset, or undefined to leave it unpinned. */
  cpu: number | undefined;
  /** A private directory for the targets and results files. */
  scratch: string;
  /** Extra request headers (a caller's X-Api-Key). */
  headers?: Record<string, string>;
}

export interface PacedResult extends LoadResult {
  /** Requests vegeta sent (responses + transport errors). */
  sent: number;
  /**
   * How far each send trailed its due time, in ms, against the schedule
   * fitted to the earliest send (so a lower bound); vegeta does not add this
   * to the latency.
   */
  sendLagMs: Percentiles;
}

/** A run cut short by stopPacedLoads (Ctrl-C or an error elsewhere). */
export class StoppedError extends Error {
  constructor() {
    super("vegeta was stopped");
  }
}

const active = new Set<ChildProcess>();
let stopped = false;

/** Stops every running vegeta (Ctrl-C, errors) and refuses new runs. */
export async function stopPacedLoads(): Promise<void> {
  stopped = true;
  await Promise.all(
    [...active].map(
      (child) =>
        new Promise<void>((resolve) => {
          const force = setTimeout(() => child.kill("SIGKILL"), 2000);
          child.once("exit", () => {
            clearTimeout(force);
            resolve();
          });
          child.kill("SIGTERM");
        }),
    ),
  );
}

/** Last resort on exit: only synchronous kills are possible. */
export function killPacedNow(): void {
  for (const child of active) child.kill("SIGKILL");
}

export async function runPaced(spec: PacedSpec): Promise<PacedResult> {
  if (stopped) throw new StoppedError();
  const targets = join(spec.scratch, "vegeta-targets.json");
  const results = join(spec.scratch, "vegeta-results.bin");
  // Accept-Encoding: identity keeps Go's HTTP client from asking for gzip
  // (it does by default); autocannon asks for none either.
  writeFileSync(
    targets,
    `${JSON.stringify({
      method: "POST",
      url: `${spec.server.baseUrl}${spec.path}`,
      body: Buffer.from(spec.body).toString("base64"),
      header: {
        ...Object.fromEntries(
          Object.entries(spec.headers ?? {}).map(([name, value]) => [name, [value]]),
        ),
        "Content-Type": ["application/json"],
        "Accept-Encoding": ["identity"],
      },
    })}\n`,
  );
  const attack = [
    "attack",
    `-rate=${spec.rate}/s`,
    `-duration=${spec.durationS}s`,
    `-targets=${targets}`,
    "-format=json",
    "-timeout=10s",
    "-max-body=0",
    `-output=${results}`,
  ];
  const [command, args] =
    spec.cpu === undefined
      ? [spec.vegeta, attack]
      : ["taskset", ["-c", String(spec.cpu), spec.vegeta, ...attack]];

  const serverCpuBefore = cpuSeconds(spec.server.pid);
  const childCpuBefore = reapedChildrenCpuSeconds();
  const wallBefore = process.hrtime.bigint();
  await new Promise<void>((resolve, reject) => {
    const child = spawn(command, args, { stdio: ["ignore", "ignore", "pipe"] });
    active.add(child);
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => {
      stderr = (stderr + chunk.toString("utf8")).slice(-2000);
    });
    // vegeta ends by itself after durationS; this only bounds a wedged run.
    const guard = setTimeout(() => child.kill("SIGKILL"), (spec.durationS + 20) * 1000);
    child.on("error", (error) => {
      clearTimeout(guard);
      active.delete(child);
      reject(error);
    });
    child.on("exit", (code, signal) => {
      clearTimeout(guard);
      active.delete(child);
      if (stopped) reject(new StoppedError());
      else if (code === 0) resolve();
      else reject(new Error(`vegeta attack exited with ${signal ?? String(code)}: ${stderr}`));
    });
  });
  const wallS = Number(process.hrtime.bigint() - wallBefore) / 1e9;
  // Read before any other child exits: vegeta is the only child reaped in between.
  const childCpuAfter = reapedChildrenCpuSeconds();
  const serverCpuAfter = cpuSeconds(spec.server.pid);

  const encoded = execFileSync(spec.vegeta, ["encode", "-to=json", results], {
    encoding: "utf8",
    maxBuffer: 1 << 28,
  });
  const summary = summarise(encoded, spec.rate);
  const serverCpu =
    serverCpuBefore === undefined || serverCpuAfter === undefined
      ? undefined
      : serverCpuAfter - serverCpuBefore;
  return {
    ...summary,
    mismatches: 0, // response bodies are not checked here
    serverCpuShare: serverCpu === undefined ? undefined : serverCpu / wallS,
    serverCpuPerRequestUs:
      serverCpu === undefined || summary.completed === 0
        ? undefined
        : (serverCpu * 1e6) / summary.completed,
    generatorCpuShare:
      childCpuBefore === undefined || childCpuAfter === undefined
        ? Number.NaN
        : (childCpuAfter - childCpuBefore) / wallS,
  };
}

interface Line {
  seq: number;
  code: number;
  timestamp: string;
  latency: number;
}

type Summary = Pick<
  PacedResult,
  "sent" | "rps" | "completed" | "latencyMs" | "non2xx" | "errors" | "sendLagMs"
>;

/** Percentiles and counts from `vegeta encode -to=json` output (one result per line). */
function summarise(encoded: string, rate: number): Summary {
  const latencies = new SampleBuffer();
  const offsets: number[] = [];
  const intervalNs = 1e9 / rate;
  let epochS: number | undefined;
  let first = Infinity;
  let last = -Infinity;
  let sent = 0;
  let completed = 0;
  let non2xx = 0;
  let errors = 0;
  for (const text of encoded.split("\n")) {
    if (text === "") continue;
    const line = JSON.parse(text) as Line;
    const [seconds, nanos] = parseTimestamp(line.timestamp);
    epochS ??= seconds;
    const sentNs = (seconds - epochS) * 1e9 + nanos;
    first = Math.min(first, sentNs);
    last = Math.max(last, sentNs);
    sent++;
    // Code 0: no response (connection error or timeout).
    if (line.code === 0) {
      errors++;
    } else {
      completed++;
      if (line.code < 200 || line.code > 299) non2xx++;
      latencies.push(line.latency / 1e6);
    }
    // Request `seq` is due at start + (seq + 1) intervals.
    offsets.push(sentNs - (line.seq + 1) * intervalNs);
  }
  let start = Infinity;
  for (const offset of offsets) start = Math.min(start, offset);
  const lag = new SampleBuffer(Math.max(1, offsets.length));
  for (const offset of offsets) lag.push((offset - start) / 1e6);
  return {
    sent,
    rps: sent > 1 ? ((sent - 1) * 1e9) / (last - first) : Number.NaN,
    completed,
    latencyMs: latencies.summary(),
    non2xx,
    errors,
    sendLagMs: lag.summary(),
  };
}

/** RFC 3339 with nanoseconds (Go's time.Time JSON) as [whole epoch seconds, nanoseconds]. */
function parseTimestamp(text: string): [number, number] {
  const match = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$/.exec(text);
  if (match === null) throw new Error(`vegeta result timestamp not understood: ${text}`);
  const [, whole = "", fraction = "", zone = ""] = match;
  return [Date.parse(`${whole}${zone}`) / 1000, Number(fraction.padEnd(9, "0"))];
}
