/**
 * 6. Decision logging on vs off: what one decision record per decision costs.
 *   - in-process: PolicyDecisionEngine.decide alone, then decide + the
 *     decision observer with metrics only, then decide + the observer writing
 *     records (JSON lines) to /dev/null, built as src/app.ts builds them;
 *   - HTTP: the PDP as a child process at saturation, a fresh child per
 *     decision-log destination: off, a file, and stdout attached to /dev/null.
 * Decision records never reach this process: with PDP_DECISION_LOG=stdout
 * the child's stdout is /dev/null, not a pipe read by the load generator.
 * Records the file transport still holds in memory when the load stops are
 * waited for, and their CPU counted, before the cost is worked out.
 */
import { execFileSync } from "node:child_process";
import { createReadStream, createWriteStream, readFileSync, readlinkSync, statSync } from "node:fs";
import { randomUUID } from "node:crypto";
import { join } from "node:path";
import { loadConfig } from "../src/config/index.ts";
import type { PolicyDecisionEngine } from "../src/decision/decision-engine.ts";
import {
  JsonLinesDecisionLog,
  noDecisionLog,
  type DecisionLog,
} from "../src/observability/decision-log.ts";
import { StreamLineWriter } from "../src/observability/log-destination.ts";
import type { DecisionObserver } from "../src/observability/decision-observer.ts";
import { createObservability } from "../src/observability/observability.ts";
import type { ActivePolicy } from "../src/policy/policy-loader.ts";
import { runLoad, type LoadResult } from "./load.ts";
import {
  cpuSeconds,
  freePort,
  startServer,
  stopServer,
  waitReady,
  writtenBytes,
  type Server,
} from "./processes.ts";
import {
  fixed,
  heading,
  percent,
  ratio,
  SampleBuffer,
  table,
  whole,
  type Percentiles,
} from "./report.ts";
import type { Workload } from "./workload.ts";

const sizes = {
  inProcessWarmup: 2_000,
  inProcessIterations: 20_000,
  inProcessMaxMs: 5_000,
  /** The in-process loops give the event loop a turn every this many decisions, so the log stream writes. */
  yieldEvery: 100,
  httpWarmupS: 3,
  httpS: 8,
  connections: 32,
};

const evaluationPath = "/access/v1/evaluation";
/** The start of a response the PDP allowed (the dispatcher: JSON.stringify of {decision, context}). */
const allowedPrefix = '{"decision":true';

export interface LoggingBenchContext {
  root: string;
  scratch: string;
  operatorData: string;
  pinning: { server: number; generator: number; all: string } | undefined;
  active: ActivePolicy;
  engine: PolicyDecisionEngine;
  /** The typical allowed request of section 2. */
  allowed: Workload;
  print: (text?: string) => void;
}

interface Measured {
  /** Decisions timed. */
  count: number;
  /** Wall time per decision, event-loop turns and the final flush included. */
  perDecisionUs: number;
  /** Each call alone. */
  latency: Percentiles;
}

const nextTurn = (): Promise<void> =>
  new Promise((resolve) => {
    setImmediate(resolve);
  });

const sleep = (ms: number): Promise<void> =>
  new Promise((resolve) => {
    setTimeout(resolve, ms);
  });

/** Runs section 6; false (after saying why) when a check fails. */
export async function runLoggingBench(ctx: LoggingBenchContext): Promise<boolean> {
  ctx.print(heading("6. Decision logging on vs off"));
  await inProcess(ctx);
  return overHttp(ctx);
}

async function inProcess(ctx: LoggingBenchContext): Promise<void> {
  const { print, engine, active, allowed } = ctx;
  // The default decision-record settings (context keys, erased pointers), as the PDP reads them.
  const settings = loadConfig({}).observability;
  const observerWith = (decisionLog: DecisionLog): DecisionObserver =>
    createObservability(settings, active, { processMetrics: false, decisionLog, clock: Date.now })
      .observer;
  const devNull = createWriteStream("/dev/null");
  const requestId = randomUUID();
  const observed = (observer: DecisionObserver) => (): void => {
    const decision = engine.decide(allowed.resolved, Date.now());
    observer.decided({
      decision,
      request: allowed.resolved,
      endpoint: "evaluation",
      caller: "anonymous",
      requestId,
      traceId: undefined,
    });
  };
  const flushDevNull = async (): Promise<void> => {
    const deadline = Date.now() + 10_000;
    while (devNull.writableLength > 0 && Date.now() < deadline) await sleep(1);
  };

  const cases: [string, () => void, () => Promise<void>][] = [
    [
      "(a) PolicyDecisionEngine.decide alone",
      () => engine.decide(allowed.resolved, Date.now()),
      nextTurn,
    ],
    [
      "(b) decide + observer, metrics only (noDecisionLog)",
      observed(observerWith(noDecisionLog)),
      nextTurn,
    ],
    [
      "(c) decide + observer + JsonLinesDecisionLog to /dev/null",
      observed(observerWith(new JsonLinesDecisionLog(new StreamLineWriter(devNull)))),
      flushDevNull,
    ],
  ];
  const results: Measured[] = [];
  for (const [, call, flush] of cases) results.push(await measure(call, flush));
  const recordsWritten = sizes.inProcessWarmup + (results[2]?.count ?? 0);
  const bytesPerRecord = devNull.bytesWritten / recordsWritten;
  devNull.destroy();

  const base = results[0];
  print(
    [
      `In-process (this process, one thread): ${allowed.name}, the subject asserted and resolved as in section 1.`,
      `The observers are built as src/app.ts builds them (createObservability with the default PDP_DECISION_LOG_* settings,`,
      `processMetrics off); (c) writes JSON lines to fs.createWriteStream("/dev/null"), ${fixed(bytesPerRecord, 0)} bytes per record.`,
      `${whole(sizes.inProcessWarmup)} warm-up then ${whole(sizes.inProcessIterations)} timed decisions per row (capped at ${sizes.inProcessMaxMs / 1000} s); every ${sizes.yieldEvery} decisions the event loop`,
      `gets a turn so the log stream writes. p50/p99: each call alone (process.hrtime.bigint); "µs/decision": wall time over`,
      `the whole loop divided by the decisions, event-loop turns, stream writes and the final flush included.`,
    ].join("\n"),
  );
  print();
  print(
    table(
      ["case", "decisions", "µs/decision", "+µs vs (a)", "p50 µs", "p99 µs", "max µs", "vs (a)"],
      cases.map(([label], i) => {
        const r = results[i];
        return [
          label,
          whole(r?.count),
          fixed(r?.perDecisionUs, 1),
          i === 0 ? "-" : fixed((r?.perDecisionUs ?? NaN) - (base?.perDecisionUs ?? NaN), 1),
          fixed(r?.latency.p50, 1),
          fixed(r?.latency.p99, 1),
          fixed(r?.latency.max, 1),
          ratio(r?.perDecisionUs, base?.perDecisionUs),
        ];
      }),
    ),
  );
}

/** Times `call` one by one after a warm-up, giving the event loop a turn every yieldEvery calls. */
async function measure(call: () => void, flush: () => Promise<void>): Promise<Measured> {
  for (let i = 0; i < sizes.inProcessWarmup; i++) {
    call();
    if ((i + 1) % sizes.yieldEvery === 0) await nextTurn();
  }
  await flush();
  const samples = new SampleBuffer(sizes.inProcessIterations);
  const start = process.hrtime.bigint();
  const deadline = start + BigInt(sizes.inProcessMaxMs) * 1_000_000n;
  for (let i = 0; i < sizes.inProcessIterations; i++) {
    const before = process.hrtime.bigint();
    call();
    const after = process.hrtime.bigint();
    samples.push(Number(after - before) / 1000);
    if ((i + 1) % sizes.yieldEvery === 0) await nextTurn();
    if (after > deadline) break;
  }
  await flush();
  const wallUs = Number(process.hrtime.bigint() - start) / 1000;
  return {
    count: samples.length,
    perDecisionUs: wallUs / samples.length,
    latency: samples.summary(),
  };
}

interface Destination {
  label: string;
  env: Record<string, string>;
  stdout: "pipe" | "ignore";
  /** The decision-log file, when records go to one. */
  file?: string;
}

interface HttpRun {
  destination: Destination;
  /** The timed run, as autocannon and /proc saw it while the load lasted. */
  result: LoadResult;
  /** From the end of the load until the last record reached the file (0 without a file). */
  flushS: number;
  /** Completed requests over the load's duration plus flushS. */
  rpsWithFlush: number;
  /** Server CPU per completed request from the start of the load until the PDP was idle again. */
  cpuPerRequestWithFlushUs: number | undefined;
  /** Bytes the PDP passed to write calls per completed request (responses and records), flush included. */
  writtenPerRequest: number | undefined;
  /** The PDP's peak resident memory (VmHWM), in MiB. */
  rssPeakMiB: number | undefined;
  /** Lines the run added to the decision-log file and their bytes; the bytes already there when the load stopped. */
  records?: { lines: number; bytes: number; bytesAtEnd: number };
  /** Records the PDP dropped because the destination fell too far behind (its metric). */
  dropped: number;
}

async function overHttp(ctx: LoggingBenchContext): Promise<boolean> {
  const { print } = ctx;
  const file = join(ctx.scratch, "decisions.jsonl");
  const destinations: Destination[] = [
    { label: "off", env: { PDP_DECISION_LOG: "off" }, stdout: "pipe" },
    { label: "file", env: { PDP_DECISION_LOG: file }, stdout: "pipe", file },
    {
      label: "stdout (/dev/null)",
      env: { PDP_DECISION_LOG: "stdout", PDP_DIAGNOSTIC_LOG: "stderr" },
      stdout: "ignore",
    },
  ];
  const pin = ctx.pinning === undefined ? "" : `taskset -c ${ctx.pinning.server} `;
  print();
  print(
    [
      `HTTP: POST ${evaluationPath} with the allowed request of section 2, one fresh PDP child per row:`,
      `${pin}node src/main.ts, LOG_LEVEL=warn, no callers, pinned as in section 2, and`,
      `  - off: PDP_DECISION_LOG=off (as in sections 2 and 5): metrics only;`,
      `  - file: PDP_DECISION_LOG=$TMP/${file.slice(ctx.scratch.length + 1)} (${fsType(ctx.scratch)}): the PDP's file writer (one writev per batch`,
      `    of waiting records, from libuv's thread pool);`,
      `  - stdout (/dev/null): PDP_DECISION_LOG=stdout with the child's stdout attached to /dev/null (spawn stdio "ignore"),`,
      `    so no record reaches this process; node writes to stdout synchronously when it is /dev/null. PDP_DIAGNOSTIC_LOG=stderr`,
      `    keeps startup errors readable here.`,
      `Each: one allowed request checked first, ${sizes.httpWarmupS} s warm-up at saturation (discarded; its records flushed before the timed run),`,
      `then autocannon, ${sizes.connections} connections for ${sizes.httpS} s.`,
    ].join("\n"),
  );

  const runs: HttpRun[] = [];
  for (const destination of destinations) {
    const run = await httpRun(ctx, destination);
    if (run === undefined) return false;
    runs.push(run);
  }

  const off = runs[0];
  const offCpu = off?.cpuPerRequestWithFlushUs;
  print();
  print("While the load lasted:");
  print(
    table(
      [
        "decision log",
        "req/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "non-2xx",
        "errors",
        "srv CPU %",
        "srv CPU µs/req",
        "gen CPU %",
        "req/s vs off",
      ],
      runs.map(({ destination, result: r }) => [
        destination.label,
        whole(r.rps),
        fixed(r.latencyMs.p50, 3),
        fixed(r.latencyMs.p99, 3),
        fixed(r.latencyMs.max, 3),
        whole(r.non2xx),
        whole(r.errors),
        percent(r.serverCpuShare),
        fixed(r.serverCpuPerRequestUs, 1),
        percent(r.generatorCpuShare),
        ratio(r.rps, off?.result.rps),
      ]),
    ),
  );
  print();
  print("Until every record of the run was written (the cost of logging):");
  print(
    table(
      [
        "decision log",
        "in file at end",
        "flush s",
        "req/s incl. flush",
        "srv CPU µs/req incl. flush",
        "+µs/req vs off",
        "written B/req",
        "RSS peak MiB",
        "req/s vs off",
        "CPU/req vs off",
      ],
      runs.map((run, i) => [
        run.destination.label,
        run.records === undefined
          ? "-"
          : `${fixed((100 * run.records.bytesAtEnd) / Math.max(1, run.records.bytes), 0)} %`,
        fixed(run.flushS, 2),
        whole(run.rpsWithFlush),
        fixed(run.cpuPerRequestWithFlushUs, 1),
        i === 0 ? "-" : fixed((run.cpuPerRequestWithFlushUs ?? NaN) - (offCpu ?? NaN), 1),
        whole(run.writtenPerRequest),
        fixed(run.rssPeakMiB, 0),
        ratio(run.rpsWithFlush, off?.rpsWithFlush),
        ratio(run.cpuPerRequestWithFlushUs, offCpu),
      ]),
    ),
  );
  print(
    [
      `"in file at end": share of the run's records on file when the load stopped; the rest waited in the PDP's memory`,
      `(the decision log's queue) and was written in the next "flush s" seconds (file size polled every 20 ms until unchanged for`,
      `0.5 s). "req/s incl. flush": completed requests over the load's duration plus the flush; "srv CPU µs/req incl. flush":`,
      `the PDP's CPU (all its threads, /proc) from the start of the load until it was idle again, per completed request:`,
      `the PDP's own write calls included, the kernel's later write-back to disk not. "written B/req": bytes the PDP passed`,
      `to write calls (/proc/<pid>/io wchar: responses and records) per completed request. "RSS peak": VmHWM, warm-up included.`,
    ].join("\n"),
  );

  let ok = true;
  for (const run of runs) {
    ok &&= run.result.non2xx === 0 && run.result.errors === 0;
    if (run.records === undefined) continue;
    const ok2xx = run.result.completed - run.result.non2xx;
    // A record is either on file or counted as dropped (mcp_pdp_decision_records_dropped_total).
    const difference = run.records.lines + run.dropped - ok2xx;
    const within = Math.abs(difference) <= sizes.connections;
    ok &&= within;
    print(
      `${run.destination.label}: ${whole(run.records.lines)} records written for the timed run (${fixed(run.records.bytes / Math.max(1, run.records.lines), 0)} bytes each) and ${whole(run.dropped)} dropped (the PDP's counter), ` +
        `${whole(ok2xx)} 2xx responses counted by autocannon: difference ${difference >= 0 ? "+" : ""}${whole(difference)} ` +
        (within
          ? `(within the ${sizes.connections} requests in flight when autocannon stopped): ok.`
          : `(MORE than the ${sizes.connections} requests in flight): records are MISSING or extra.`),
    );
  }
  const cost = runs.slice(1).map((run) => {
    const extra = (run.cpuPerRequestWithFlushUs ?? NaN) - (offCpu ?? NaN);
    return `${run.destination.label} +${fixed(extra, 1)} µs of server CPU per decision (+${fixed((100 * extra) / (offCpu ?? NaN), 0)} %), ${ratio(run.rpsWithFlush, off?.rpsWithFlush)} the decisions/s`;
  });
  print(`Decision logging on, against off (flush included): ${cost.join("; ")}.`);
  if (!ok) print("A check FAILED (see above): the figures with decision logging on are suspect.");
  return ok;
}

async function httpRun(
  ctx: LoggingBenchContext,
  destination: Destination,
): Promise<HttpRun | undefined> {
  const { print } = ctx;
  const port = await freePort();
  const pdp = startServer({
    name: `PDP (decision log ${destination.label})`,
    command: process.execPath,
    args: ["src/main.ts"],
    cwd: ctx.root,
    env: {
      ...process.env,
      HOST: "127.0.0.1",
      PORT: String(port),
      PDP_DATA: ctx.operatorData,
      LOG_LEVEL: "warn",
      ...destination.env,
    },
    port,
    cpu: ctx.pinning?.server,
    stdout: destination.stdout,
  });
  try {
    await waitReady(pdp, "/ready", 30_000);
    if (!(await checked(ctx, pdp, destination))) return undefined;
    const spec = {
      server: pdp,
      path: evaluationPath,
      method: "POST",
      body: JSON.stringify(ctx.allowed.request),
      connections: sizes.connections,
    } as const;
    const { file } = destination;
    await runLoad({ ...spec, durationS: sizes.httpWarmupS });
    const startSize = (await settled(file)).size;
    const droppedBefore = await droppedRecords(pdp.baseUrl);

    const cpuBefore = cpuSeconds(pdp.pid);
    const writtenBefore = writtenBytes(pdp.pid);
    const result = await runLoad({ ...spec, durationS: sizes.httpS });
    const sizeAtEnd = file === undefined ? 0 : statSync(file).size;
    const flush = await settled(file);
    const cpuAfter = cpuSeconds(pdp.pid);
    const writtenAfter = writtenBytes(pdp.pid);

    const perRequest = (before: number | undefined, after: number | undefined, scale: number) =>
      before === undefined || after === undefined || result.completed === 0
        ? undefined
        : ((after - before) * scale) / result.completed;
    const loadS = result.completed / result.rps;
    const run: HttpRun = {
      destination,
      result,
      flushS: flush.seconds,
      rpsWithFlush: result.completed / (loadS + flush.seconds),
      cpuPerRequestWithFlushUs: perRequest(cpuBefore, cpuAfter, 1e6),
      writtenPerRequest: perRequest(writtenBefore, writtenAfter, 1),
      rssPeakMiB: peakRssMiB(pdp.pid),
      dropped: (await droppedRecords(pdp.baseUrl)) - droppedBefore,
    };
    if (file !== undefined) {
      run.records = {
        lines: await countLines(file, startSize, flush.size),
        bytes: flush.size - startSize,
        bytesAtEnd: sizeAtEnd - startSize,
      };
    }
    return run;
  } catch (error) {
    print(`${pdp.name} (pid ${pdp.pid}) failed:\n${pdp.tail()}`);
    throw error;
  } finally {
    await stopServer(pdp);
  }
}

/**
 * Outside timing: the PDP allows the request, and its records go where they
 * should (the file gets exactly this decision's record; stdout is /dev/null).
 */
async function checked(
  ctx: LoggingBenchContext,
  pdp: Server,
  destination: Destination,
): Promise<boolean> {
  const { print } = ctx;
  const response = await fetch(`${pdp.baseUrl}${evaluationPath}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(ctx.allowed.request),
    signal: AbortSignal.timeout(5000),
  });
  const text = await response.text();
  if (response.status !== 200 || !text.startsWith(allowedPrefix)) {
    print(`${pdp.name}: the request is NOT ALLOWED (HTTP ${response.status}): ${text}`);
    return false;
  }
  const facts = [`pid ${pdp.pid}: the request is allowed`];
  if (destination.stdout === "ignore") {
    const target = readlinkSync(`/proc/${pdp.pid}/fd/1`);
    if (target !== "/dev/null") {
      print(`${pdp.name}: stdout is ${target}, not /dev/null`);
      return false;
    }
    facts.push("stdout (fd 1) is /dev/null");
  }
  if (destination.file !== undefined) {
    const { size } = await settled(destination.file);
    const lines = await countLines(destination.file, 0, size);
    const first = (await readText(destination.file, size)).split("\n")[0] ?? "";
    let record: Record<string, unknown> = {};
    try {
      record = JSON.parse(first) as Record<string, unknown>;
    } catch {
      // reported below
    }
    const decisionId = response.headers.get("x-decision-id");
    if (
      lines !== 1 ||
      record.log !== "decision" ||
      record.outcome !== "allow" ||
      record.decision_id !== decisionId
    ) {
      print(
        `${pdp.name}: expected exactly one decision record (decision_id ${String(decisionId)}, outcome allow) in the file, found ${lines} line(s): ${first.slice(0, 300)}`,
      );
      return false;
    }
    facts.push(`its record (decision_id ${decisionId}, outcome allow) is the file's only line`);
  }
  print(`${pdp.name}: ${facts.join("; ")}.`);
  return true;
}

/**
 * Waits until the file has stopped growing (unchanged for 0.5 s, polled every
 * 20 ms; at most 15 s): its size then, and how long after the call it last
 * grew. Without a file, waits 0.5 s (records are written synchronously, or not
 * at all) and reports 0 s.
 */
async function settled(file: string | undefined): Promise<{ size: number; seconds: number }> {
  const start = Date.now();
  if (file === undefined) {
    await sleep(500);
    return { size: 0, seconds: 0 };
  }
  let size = statSync(file).size;
  let changedAt = start;
  while (Date.now() - changedAt < 500 && Date.now() - start < 15_000) {
    await sleep(20);
    const now = statSync(file).size;
    if (now !== size) {
      size = now;
      changedAt = Date.now();
    }
  }
  return { size, seconds: (changedAt - start) / 1000 };
}

/** VmHWM of /proc/<pid>/status (peak resident set), in MiB. */
function peakRssMiB(pid: number): number | undefined {
  try {
    const line = readFileSync(`/proc/${pid}/status`, "utf8")
      .split("\n")
      .find((l) => l.startsWith("VmHWM:"));
    const kib = Number(line?.replace(/^VmHWM:\s*(\d+)\s*kB.*$/, "$1"));
    return line === undefined || !Number.isFinite(kib) ? undefined : kib / 1024;
  } catch {
    return undefined;
  }
}

/** Newlines in bytes [start, end) of the file. */
/** The PDP's mcp_pdp_decision_records_dropped_total, every reason summed (0 when absent). */
async function droppedRecords(baseUrl: string): Promise<number> {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  return text
    .split("\n")
    .filter((l) => /^mcp_pdp_decision_records_dropped_total[{ ]/.test(l))
    .reduce((sum, l) => sum + Number(l.split(" ").pop()), 0);
}

async function countLines(file: string, start: number, end: number): Promise<number> {
  if (end <= start) return 0;
  let lines = 0;
  for await (const chunk of createReadStream(file, { start, end: end - 1 })) {
    const buffer = chunk as Buffer;
    for (let i = buffer.indexOf(10); i !== -1; i = buffer.indexOf(10, i + 1)) lines++;
  }
  return lines;
}

async function readText(file: string, end: number): Promise<string> {
  if (end <= 0) return "";
  let text = "";
  for await (const chunk of createReadStream(file, { start: 0, end: end - 1, encoding: "utf8" })) {
    text += chunk as string;
  }
  return text;
}

/** The file system type of a directory (findmnt), for the setup line. */
function fsType(directory: string): string {
  try {
    const type = execFileSync("findmnt", ["-n", "-o", "FSTYPE", "-T", directory], {
      encoding: "utf8",
    }).trim();
    return type === "" ? "file system unknown" : `${type}, through the page cache`;
  } catch {
    return "file system unknown";
  }
}
