/**
 * Live-policy figures (issue 10), printed as tables (no pass/fail), for the
 * PDP as a real child process with a locked-down configuration (a caller with
 * an API key, an ops key; ops endpoints and /metrics closed):
 *   1. activation time of the default bundle with a new operator data file:
 *      written over the watched file, and through POST /v1/policy/reload, to
 *      the first decision answered on the new revision;
 *   2. decision latency at a fixed rate (vegeta) during a reload storm (an
 *      admin reload every 100 ms, alternating two data files) vs without;
 *   3. the cost of shadow evaluation (policy.shadow) at sample_rate 1.0 and
 *      at the default 0.01, vs no shadow: fixed rate and saturation.
 *
 * Usage: npm run bench:live (about two minutes). It is a script of its own,
 * not a section of `npm run bench`: that run already takes about three and a
 * half minutes, and these figures are about reloading, not the decision path,
 * so they are rerun on their own when the reload or shadow code changes.
 * Everything listens on 127.0.0.1; every child process is stopped on exit,
 * error or Ctrl-C.
 */
import { createHash, randomBytes } from "node:crypto";
import { execFileSync } from "node:child_process";
import { mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import {
  defaultConfigEntrypoint,
  defaultEntrypoint,
  embeddedBundlePath,
} from "../src/config/index.ts";
import { PolicyDecisionEngine } from "../src/decision/decision-engine.ts";
import { ShadowEvaluator } from "../src/decision/shadow-evaluator.ts";
import { readDataFile, type DataDocument } from "../src/policy/data-overlay.ts";
import { PolicyHolder } from "../src/policy/policy-holder.ts";
import { loadActivePolicy } from "../src/policy/policy-loader.ts";
import { runLoad, withOtherLoad, type LoadResult, type Loaded } from "./load.ts";
import {
  freePort,
  planPinning,
  startServer,
  stopServer,
  waitReady,
  type Server,
} from "./processes.ts";
import {
  fixed,
  heading,
  latencyCells,
  percent,
  SampleBuffer,
  table,
  timePerCall,
  whole,
  type Percentiles,
} from "./report.ts";
import { runPaced, type PacedResult } from "./vegeta.ts";
import { runBenchmark } from "./lifecycle.ts";
import { workloads } from "./workload.ts";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const operatorData = join(root, "examples", "operator-data.yaml");
const evaluationPath = "/access/v1/evaluation";

const sizes = {
  activations: 30,
  /** Pause after an activation before the next edit, beyond the watcher's 250 ms debounce. */
  settleMs: 300,
  /** Longest wait for one activation to show. */
  activationTimeoutMs: 10_000,
  stormIntervalMs: 100,
  warmupS: 3,
  fixedRate: 1_000,
  fixedS: 10,
  saturationConnections: 32,
  saturationS: 10,
  inProcess: { warmup: 2_000, iterations: 20_000, maxMs: 10_000 },
};

const print = (text = ""): void => {
  process.stdout.write(`${text}\n`);
};

const sleep = (ms: number): Promise<void> =>
  new Promise((done) => {
    setTimeout(done, ms);
  });

const sha256 = (text: string): string => createHash("sha256").update(text).digest("hex");

/** Keys made for this run; only their digests go into the PDP's configuration. */
const callerKey = randomBytes(24).toString("hex");
const opsKey = randomBytes(24).toString("hex");
const callerHeaders = { "x-api-key": callerKey };
const opsHeaders = { "x-api-key": opsKey };

let scratch: string | undefined;

async function main(): Promise<void> {
  const pinning = planPinning();
  const vegeta = execFileSync(join(root, "bench", "ensure-vegeta.sh"), {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  }).trim();
  scratch = mkdtempSync(join(tmpdir(), "mcp-pdp-bench-live-"));
  const dir = scratch;

  // Two operator data documents that both allow the workload and differ in
  // content, so each swap between them is a new revision.
  const first = await readDataFile(operatorData);
  const second: DataDocument = {
    ...first,
    tools: { ...(first.tools as Record<string, unknown>), "files/list_dir": "read" },
  };
  const texts = [JSON.stringify(first), JSON.stringify(second)] as const;
  const liveData = join(dir, "operator-data.json");
  const candidateData = join(dir, "operator-data.next.json");
  writeFileSync(liveData, texts[0]);
  writeFileSync(candidateData, texts[1]);
  /** Writes a new file beside the live one and renames it over it, as editors and config tools do. */
  const install = (index: number): void => {
    const temporary = `${liveData}.tmp`;
    writeFileSync(temporary, texts[index % 2] ?? texts[0]);
    renameSync(temporary, liveData);
  };

  const { allowed } = await workloads(Date.now());
  const body = JSON.stringify(allowed.request);

  print(heading("mcp-pdp live-policy benchmark"));
  print(
    pinning === undefined
      ? "core pinning: no (taskset missing or fewer than 2 cores): servers and load share all cores"
      : `core pinning: PDPs on core ${pinning.server} (taskset -c ${pinning.server}); this process (reload driver, autocannon) and vegeta on core ${pinning.generator}`,
  );
  print(
    [
      "Every PDP: node src/main.ts, LOG_LEVEL=warn, PDP_DECISION_LOG=off, and a PDP_CONFIG with",
      "  callers: [{name: bench, api_key_sha256: [<digest>], permissions: [authzen], assert_subject: true}],",
      "  ops: {api_key_sha256: [<digest>]} (so /health, /ready, /metrics, /v1/status and the reload need a key),",
      "  policy.data: $TMP/operator-data.json (examples/operator-data.yaml as JSON; the second file adds one tool),",
      "  the embedded default bundle. Every request carries X-Api-Key (the caller's, or the ops key for ops routes).",
    ].join("\n"),
  );

  const startPdp = async (
    name: string,
    policy: Record<string, unknown>,
    data = liveData,
  ): Promise<Server> => {
    const config = join(dir, `pdp-config-${name.replace(/\W+/g, "-")}.json`);
    writeFileSync(
      config,
      JSON.stringify({
        policy: { data, ...policy },
        callers: [
          {
            name: "bench",
            api_key_sha256: [sha256(callerKey)],
            permissions: ["authzen"],
            assert_subject: true,
          },
        ],
        ops: { api_key_sha256: [sha256(opsKey)] },
      }),
    );
    const port = await freePort();
    const pdp = startServer({
      name,
      command: process.execPath,
      args: ["src/main.ts"],
      cwd: root,
      env: {
        ...process.env,
        HOST: "127.0.0.1",
        PORT: String(port),
        PDP_CONFIG: config,
        LOG_LEVEL: "warn",
        PDP_DECISION_LOG: "off",
      },
      port,
      cpu: pinning?.server,
    });
    await waitReady(pdp, "/ready", 30_000, opsHeaders);
    return pdp;
  };

  const decide = async (pdp: Server): Promise<void> => {
    const response = await fetch(`${pdp.baseUrl}${evaluationPath}`, {
      method: "POST",
      headers: { ...callerHeaders, "content-type": "application/json" },
      body,
      signal: AbortSignal.timeout(5000),
    });
    const answer = (await response.json()) as { decision?: unknown };
    if (response.status !== 200 || answer.decision !== true) {
      throw new Error(`the workload was not allowed: ${response.status} ${JSON.stringify(answer)}`);
    }
  };

  // 1. Activation --------------------------------------------------------------
  print(heading("1. Activation of a new operator data file (default bundle)"));
  const watched = await startPdp("PDP watch", { watch: true });
  const byWatch = await activationsByWatch(watched, install, decide);
  await stopServer(watched);
  install(0);
  const admin = await startPdp("PDP admin", { watch: false });
  const byAdmin = await activationsByAdmin(admin, install, decide);
  print(
    table(
      ["trigger", "activations", "step", "median ms", "p99 ms", "max ms"],
      [
        ...activationRows("file written (watch)", byWatch),
        ...activationRows("POST /v1/policy/reload", byAdmin),
      ],
    ),
  );
  print(
    [
      `${sizes.activations} activations per trigger, alternating the two data files (each one a new revision); p99 of ${sizes.activations}`,
      'samples is the largest but one at most (nearest rank). "watch": the clock starts before the new file is',
      "written and renamed over the watched one; /ready (ops key) is polled back to back until it names a new",
      "revision, then one decision is sent: once /ready names it, every later decision runs on it (one active",
      `policy, swapped whole). The watcher debounces events by 250 ms, which is most of that time. ${sizes.settleMs} ms pass`,
      'between activations. "admin": the file is written first (not timed), then the clock runs from sending',
      "POST /v1/policy/reload (ops key, policy.watch false) to its 200 activated answer (the candidate read, checked",
      "and swapped in), and to the answer of the decision sent right after it.",
    ].join("\n"),
  );

  // 2. Reload storm --------------------------------------------------------------
  print(heading(`2. Decisions at a fixed rate during a reload storm`));
  const fixedName = `fixed ${whole(sizes.fixedRate)}/s for ${sizes.fixedS} s`;
  await runLoad({
    server: admin,
    path: evaluationPath,
    method: "POST",
    body,
    headers: callerHeaders,
    connections: sizes.saturationConnections,
    durationS: sizes.warmupS,
  });
  const paced = (pdp: Server): Promise<Loaded<PacedResult>> =>
    withOtherLoad(pinning?.server, () =>
      runPaced({
        vegeta,
        server: pdp,
        path: evaluationPath,
        body,
        rate: sizes.fixedRate,
        durationS: sizes.fixedS,
        cpu: pinning?.generator,
        scratch: dir,
        headers: callerHeaders,
      }),
    );
  const quiet = await paced(admin);
  const storm = new ReloadStorm(admin, install);
  const stormy = await storm.during(paced(admin));
  await stopServer(admin);
  print(
    table(
      [
        "scenario",
        "sent",
        "req/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "non-2xx",
        "errors",
        "srv CPU %",
        "srv CPU µs/req",
        "other load on srv core %",
      ],
      [pacedRow(`no reloads, ${fixedName}`, quiet), pacedRow(`reload storm, ${fixedName}`, stormy)],
    ),
  );
  print(
    table(
      [
        "reloads",
        "activated",
        "other outcome",
        "failed",
        "answer p50 ms",
        "answer p99 ms",
        "answer max ms",
      ],
      [
        [
          whole(storm.sent),
          whole(storm.activated),
          whole(storm.other),
          whole(storm.failed),
          fixed(storm.answers.summary().p50, 2),
          fixed(storm.answers.summary().p99, 2),
          fixed(storm.answers.summary().max, 2),
        ],
      ],
    ),
  );
  print(
    [
      `The same PDP as "admin" above, after ${sizes.warmupS} s of warm-up at saturation (autocannon, discarded). vegeta sends the`,
      `allowed request evenly paced (open model, as in \`npm run bench\`); during the storm this process writes the other`,
      `data file and sends POST /v1/policy/reload every ${sizes.stormIntervalMs} ms (the next one only after the previous answer), each`,
      '"activated" a new revision. Latency runs from the send to the last byte of the answer. "other outcome": unchanged',
      'or refused answers, "failed": reloads with no answer. "other load on srv core": the share of the server\'s',
      "core that other processes used during the run (its busy time in /proc/stat less the server's own CPU); on a",
      "shared machine, a row with other load there was disturbed, above all its p99.",
    ].join("\n"),
  );

  // 3. Shadow evaluation ----------------------------------------------------------
  print(
    heading("3. Shadow evaluation (policy.shadow: the default bundle with the second data file)"),
  );
  const active = await loadActivePolicy({
    bundlePath: embeddedBundlePath,
    dataPath: operatorData,
    entrypoint: defaultEntrypoint,
    configCheck: { entrypoint: defaultConfigEntrypoint, required: true },
  });
  const candidate = await loadActivePolicy({
    bundlePath: embeddedBundlePath,
    dataPath: candidateData,
    entrypoint: defaultEntrypoint,
    configCheck: { entrypoint: defaultConfigEntrypoint, required: true },
  });
  const inProcessRows: string[][] = [];
  let baselineP50Us: number | undefined;
  for (const [label, sampleRate] of [
    ["decide, no shadow", undefined],
    ["decide, shadow sample_rate 0.01", 0.01],
    ["decide, shadow sample_rate 1.0", 1],
  ] as const) {
    // budgetShare 1: a timing loop is all evaluation, so the default 100 ms a second would
    // skip most of the shadows it is meant to time.
    const shadow =
      sampleRate === undefined
        ? undefined
        : new ShadowEvaluator(candidate, { sampleRate, budgetShare: 1 });
    const engine = new PolicyDecisionEngine(new PolicyHolder(active, "local"), { shadow });
    const check = engine.decide(allowed.resolved, Date.now());
    if (!check.allow || (sampleRate === 1 && check.shadow?.result !== "agree")) {
      throw new Error(`in-process ${label}: ${JSON.stringify(check)}`);
    }
    const timed = timePerCall(() => engine.decide(allowed.resolved, Date.now()), sizes.inProcess);
    baselineP50Us ??= timed.latency.p50;
    inProcessRows.push([
      label,
      whole(timed.latency.count),
      whole(timed.perSecond),
      ...latencyCells(timed.latency, 1),
      fixed(timed.latency.p50 - baselineP50Us, 1),
    ]);
  }
  print(
    table(
      [
        "in process (this thread)",
        "iterations",
        "decides/s",
        "mean µs",
        "p50 µs",
        "p90 µs",
        "p99 µs",
        "max µs",
        "+ p50 µs",
      ],
      inProcessRows,
    ),
  );
  print(
    [
      `PolicyDecisionEngine.decide on the allowed request, ${sizes.inProcess.warmup} warm-up then ${sizes.inProcess.iterations} timed calls per row, each timed`,
      'with process.hrtime.bigint; the shadow with budgetShare 1 so none is skipped. "+ p50 µs": the shadow\'s',
      "cost per decision over the row without it (the candidate's wasm evaluation and result reading), from the",
      "medians: the means carry the pauses (GC, other processes) of whichever row they fell in.",
    ].join("\n"),
  );
  print();
  const shadowRows: string[][] = [];
  const countRows: string[][] = [];
  for (const [label, shadow] of [
    ["no shadow", undefined],
    ["shadow, sample_rate 0.01 (default)", { data: candidateData }],
    ["shadow, sample_rate 1.0", { data: candidateData, sample_rate: 1 }],
  ] as const) {
    const pdp = await startPdp(`PDP ${label}`, {
      watch: false,
      ...(shadow === undefined ? {} : { shadow }),
    });
    const saturation = {
      server: pdp,
      path: evaluationPath,
      method: "POST",
      body,
      headers: callerHeaders,
      connections: sizes.saturationConnections,
    } as const;
    await runLoad({ ...saturation, durationS: sizes.warmupS });
    const afterWarmup = await shadowCounts(pdp);
    const steady = await paced(pdp);
    const afterPaced = await shadowCounts(pdp);
    const full = await withOtherLoad(pinning?.server, () =>
      runLoad({ ...saturation, durationS: sizes.saturationS }),
    );
    const afterFull = await shadowCounts(pdp);
    await stopServer(pdp);
    shadowRows.push(shadowRow(label, steady, full));
    if (shadow !== undefined) {
      countRows.push(countRow(`${label}, ${fixedName}`, afterWarmup, afterPaced));
      countRows.push(countRow(`${label}, saturation`, afterPaced, afterFull));
    }
  }
  print(
    table(
      [
        "PDP",
        "fixed p50 ms",
        "fixed p99 ms",
        "fixed srv CPU µs/req",
        "sat. req/s",
        "sat. p99 ms",
        "sat. srv CPU µs/req",
        "non-2xx",
        "errors",
        "other load on srv core % (fixed / sat.)",
      ],
      shadowRows,
    ),
  );
  print(table(["run", "agree", "disagree", "error", "skipped", "sampled"], countRows));
  print(
    [
      `A fresh PDP per row (policy.watch false): ${sizes.warmupS} s warm-up at saturation, then ${fixedName} (vegeta), then`,
      `saturation (autocannon, ${sizes.saturationConnections} connections, ${sizes.saturationS} s). The candidate allows the request too, so every`,
      'evaluated shadow "agree"s. Counts: mcp_pdp_shadow_decisions_total{result} from /metrics (ops key), the',
      'difference over each run; "skipped" are sampled decisions not evaluated because shadow evaluation had used',
      "its 100 ms of the current second (wall-clock time, so other load on the core makes the shadow give way",
      'too). "other load on srv core" as in section 2.',
    ].join("\n"),
  );
}

/** Activations through the watcher: write the other file, poll /ready, then decide. */
async function activationsByWatch(
  pdp: Server,
  install: (index: number) => void,
  decide: (pdp: Server) => Promise<void>,
): Promise<{ seen: SampleBuffer; decided: SampleBuffer }> {
  const seen = new SampleBuffer(sizes.activations);
  const decided = new SampleBuffer(sizes.activations);
  let revision = await readyRevision(pdp);
  for (let i = 1; i <= sizes.activations; i++) {
    const start = process.hrtime.bigint();
    install(i);
    const deadline = Date.now() + sizes.activationTimeoutMs;
    let now = revision;
    while (now === revision) {
      if (Date.now() > deadline) throw new Error(`${pdp.name}: no new revision after a write`);
      now = await readyRevision(pdp);
    }
    seen.push(Number(process.hrtime.bigint() - start) / 1e6);
    await decide(pdp);
    decided.push(Number(process.hrtime.bigint() - start) / 1e6);
    revision = now;
    await sleep(sizes.settleMs);
  }
  return { seen, decided };
}

/** Activations through the admin endpoint: write the other file (untimed), reload, then decide. */
async function activationsByAdmin(
  pdp: Server,
  install: (index: number) => void,
  decide: (pdp: Server) => Promise<void>,
): Promise<{ seen: SampleBuffer; decided: SampleBuffer }> {
  const seen = new SampleBuffer(sizes.activations);
  const decided = new SampleBuffer(sizes.activations);
  for (let i = 1; i <= sizes.activations; i++) {
    install(i);
    const start = process.hrtime.bigint();
    const outcome = await reload(pdp);
    seen.push(Number(process.hrtime.bigint() - start) / 1e6);
    await decide(pdp);
    decided.push(Number(process.hrtime.bigint() - start) / 1e6);
    if (outcome.result !== "activated" || outcome.revision !== (await readyRevision(pdp))) {
      throw new Error(`${pdp.name}: reload ${i} answered ${JSON.stringify(outcome)}`);
    }
  }
  return { seen, decided };
}

function activationRows(
  trigger: string,
  samples: { seen: SampleBuffer; decided: SampleBuffer },
): string[][] {
  const row = (step: string, s: Percentiles): string[] => [
    trigger,
    whole(s.count),
    step,
    fixed(s.p50, 2),
    fixed(s.p99, 2),
    fixed(s.max, 2),
  ];
  const seen = samples.seen.summary();
  const decided = samples.decided.summary();
  return [
    row(trigger.startsWith("POST") ? "reload answered" : "new revision in /ready", seen),
    row("first decision answered", decided),
  ];
}

async function readyRevision(pdp: Server): Promise<string> {
  const response = await fetch(`${pdp.baseUrl}/ready`, {
    headers: opsHeaders,
    signal: AbortSignal.timeout(5000),
  });
  const answer = (await response.json()) as { revision?: unknown };
  if (response.status !== 200 || typeof answer.revision !== "string") {
    throw new Error(`${pdp.name}: /ready answered ${response.status} ${JSON.stringify(answer)}`);
  }
  return answer.revision;
}

async function reload(pdp: Server): Promise<{ result?: unknown; revision?: unknown }> {
  const response = await fetch(`${pdp.baseUrl}/v1/policy/reload`, {
    method: "POST",
    headers: opsHeaders,
    signal: AbortSignal.timeout(5000),
  });
  const answer = (await response.json()) as { result?: unknown; revision?: unknown };
  if (response.status !== 200) {
    throw new Error(`${pdp.name}: reload answered ${response.status} ${JSON.stringify(answer)}`);
  }
  return answer;
}

/** Reloads every stormIntervalMs, alternating the data files, while a load runs. */
class ReloadStorm {
  sent = 0;
  activated = 0;
  other = 0;
  failed = 0;
  readonly answers = new SampleBuffer(1024);
  private running = false;

  private readonly pdp: Server;
  private readonly install: (index: number) => void;

  constructor(pdp: Server, install: (index: number) => void) {
    this.pdp = pdp;
    this.install = install;
  }

  async during<T>(load: Promise<T>): Promise<T> {
    this.running = true;
    const storm = this.run();
    try {
      return await load;
    } finally {
      this.running = false;
      await storm;
    }
  }

  private async run(): Promise<void> {
    let next = Date.now();
    while (this.running) {
      this.sent++;
      this.install(this.sent);
      const start = process.hrtime.bigint();
      try {
        const outcome = await reload(this.pdp);
        this.answers.push(Number(process.hrtime.bigint() - start) / 1e6);
        if (outcome.result === "activated") this.activated++;
        else this.other++;
      } catch (error) {
        // A refused reload answers 422, which reload() throws as well.
        if (error instanceof Error && error.message.includes("answered")) this.other++;
        else this.failed++;
      }
      next += sizes.stormIntervalMs;
      await sleep(Math.max(0, next - Date.now()));
    }
  }
}

type ShadowCounts = Record<"agree" | "disagree" | "error" | "skipped", number>;

async function shadowCounts(pdp: Server): Promise<ShadowCounts> {
  const response = await fetch(`${pdp.baseUrl}/metrics`, {
    headers: opsHeaders,
    signal: AbortSignal.timeout(5000),
  });
  const text = await response.text();
  if (response.status !== 200) throw new Error(`${pdp.name}: /metrics answered ${response.status}`);
  const counts: ShadowCounts = { agree: 0, disagree: 0, error: 0, skipped: 0 };
  for (const line of text.split("\n")) {
    const match = /^mcp_pdp_shadow_decisions_total\{result="(\w+)"\} (\S+)$/.exec(line);
    const [, result, value] = match ?? [];
    if (result !== undefined && result in counts)
      counts[result as keyof ShadowCounts] = Number(value);
  }
  return counts;
}

function countRow(name: string, before: ShadowCounts, after: ShadowCounts): string[] {
  const delta = (key: keyof ShadowCounts): number => after[key] - before[key];
  const sampled = delta("agree") + delta("disagree") + delta("error") + delta("skipped");
  return [
    name,
    whole(delta("agree")),
    whole(delta("disagree")),
    whole(delta("error")),
    whole(delta("skipped")),
    whole(sampled),
  ];
}

function pacedRow(name: string, r: Loaded<PacedResult>): string[] {
  return [
    name,
    whole(r.sent),
    fixed(r.rps, 1),
    fixed(r.latencyMs.p50, 3),
    fixed(r.latencyMs.p90, 3),
    fixed(r.latencyMs.p99, 3),
    fixed(r.latencyMs.max, 3),
    whole(r.non2xx),
    whole(r.errors),
    percent(r.serverCpuShare),
    fixed(r.serverCpuPerRequestUs, 1),
    percent(r.otherShare),
  ];
}

function shadowRow(name: string, steady: Loaded<PacedResult>, full: Loaded<LoadResult>): string[] {
  return [
    name,
    fixed(steady.latencyMs.p50, 3),
    fixed(steady.latencyMs.p99, 3),
    fixed(steady.serverCpuPerRequestUs, 1),
    whole(full.rps),
    fixed(full.latencyMs.p99, 3),
    fixed(full.serverCpuPerRequestUs, 1),
    whole(steady.non2xx + full.non2xx),
    whole(steady.errors + full.errors),
    `${percent(steady.otherShare)} / ${percent(full.otherShare)}`,
  ];
}

await runBenchmark(main, () => {
  if (scratch !== undefined) rmSync(scratch, { recursive: true, force: true });
  scratch = undefined;
});
