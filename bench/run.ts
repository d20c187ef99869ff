/**
 * Performance figures for the PDP, printed as tables (no pass/fail):
 *   1. in-process evaluation (raw wasm, and the decision engine);
 *   2./3. per core: each server pinned to one core, the load generators on
 *      the other: the PDP on the pinned Node 24 and Node 22 builds, the bare
 *      node:http floor (bench/floor-server.ts) on both, and OPA running the
 *      same Rego and data; a constant request rate with vegeta
 *      (bench/ensure-vegeta.sh provides it), saturation and the GET /health
 *      express route with autocannon; ratios and the CPU target;
 *   whole machine: the PDP with PDP_WORKERS=1 and 2 and OPA on all cores, and
 *      a client holding two keep-alive connections (bench/machine.ts);
 *   4./5. token verification on the decision path, per algorithm (RS256,
 *      PS256, ES256, EdDSA): in-process, and the PDP over HTTP with a fresh
 *      token per request, one repeated token, and the cache off (bench/tokens.ts);
 *   6. decision logging on vs off: the decision observer in-process, and the
 *      PDP at saturation with PDP_DECISION_LOG off, to a file, and to stdout on
 *      /dev/null (bench/logging.ts). Sections 2-5 run the PDP with it off.
 *
 * Usage: npm run bench. Everything listens on 127.0.0.1; every child process
 * is stopped on exit, error or Ctrl-C. Runs in about six minutes.
 * Live-policy figures (activation, reload storm, shadow) are bench/live.ts: npm run bench:live;
 * the memory soak is bench/soak.ts: npm run bench:soak.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { availableParallelism, cpus, release, tmpdir, totalmem } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { isDeepStrictEqual } from "node:util";
import {
  defaultConfigEntrypoint,
  defaultEntrypoint,
  embeddedBundlePath,
} from "../src/config/index.ts";
import { PolicyDecisionEngine } from "../src/decision/decision-engine.ts";
import { buildPolicyInput } from "../src/decision/input-builder.ts";
import { readPolicyAnswer, type PolicyAnswer } from "../src/decision/result-reader.ts";
import { readBundle } from "../src/policy/bundle-reader.ts";
import { mergeData, readDataFile, type DataDocument } from "../src/policy/data-overlay.ts";
import { PolicyHolder } from "../src/policy/policy-holder.ts";
import { loadActivePolicy } from "../src/policy/policy-loader.ts";
import { runLoad, withOtherLoad, type LoadResult, type Loaded } from "./load.ts";
import { cpuSeconds, planPinning, stopServer, type Server } from "./processes.ts";
import { nodeBuild, startFloor, startOpa, startPdp } from "./servers.ts";
import { runMachineBench } from "./machine.ts";
import {
  fixed,
  heading,
  latencyCells,
  percent,
  ratio,
  table,
  timePerCall,
  whole,
  type Percentiles,
} from "./report.ts";
import { runPaced, type PacedResult } from "./vegeta.ts";
import { runLoggingBench } from "./logging.ts";
import { runTokenBench, stopTokenBench } from "./tokens.ts";
import { runBenchmark } from "./lifecycle.ts";
import { opaBody, workloads, type Workload } from "./workload.ts";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const operatorData = join(root, "examples", "operator-data.yaml");
const evaluationPath = "/access/v1/evaluation";
/** The vegeta release bench/ensure-vegeta.sh pins. */
const vegetaVersion = "12.13.0";
const opaDecisionPath = "/v1/data/mcp/authz/decision";

/** In-process loop sizes; each loop is also bounded in time. */
const inProcess = { warmup: 2_000, iterations: 20_000, maxMs: 10_000 };
/** HTTP scenarios (seconds, connections). */
const http = {
  warmupS: 2,
  fixedRate: 1_000,
  fixedS: 8,
  saturationConnections: 32,
  saturationS: 10,
  floorS: 5,
};

const print = (text = ""): void => {
  process.stdout.write(`${text}\n`);
};

let scratch: string | undefined;

async function main(): Promise<void> {
  const cores = `${cpus().length} / ${availableParallelism()}`; // before pinning narrows the mask
  const pinning = planPinning();
  const opa = execFileSync(join(root, "scripts", "ensure-opa.sh"), {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  }).trim();
  const opaVersion = execFileSync(opa, ["version"], { encoding: "utf8" }).split("\n")[0] ?? "?";
  const vegeta = execFileSync(join(root, "bench", "ensure-vegeta.sh"), {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  }).trim();
  const require = createRequire(import.meta.url);
  const autocannonVersion = (require("autocannon/package.json") as { version: string }).version;
  const node24 = nodeBuild(root, "24");
  const node22 = nodeBuild(root, "22");

  print(heading("mcp-pdp benchmark"));
  print(
    table(
      ["fact", "value"],
      [
        ["node (this process: in-process loops, autocannon)", process.version],
        [
          "node builds the servers run on",
          `${node24.version} (${node24.node}), ${node22.version} (${node22.node})`,
        ],
        ["cpu model", cpus()[0]?.model ?? "unknown"],
        ["cores (os.cpus / available)", cores],
        ["kernel", `${process.platform} ${release()}`],
        ["memory", `${(totalmem() / 2 ** 30).toFixed(1)} GiB`],
        ["opa", `${opaVersion.replace("Version: ", "v")} (${opa})`],
        ["autocannon", autocannonVersion],
        ["vegeta", `v${vegetaVersion} (${vegeta})`],
        [
          "core pinning",
          pinning === undefined
            ? "no (taskset missing or fewer than 2 cores): servers and load generators share all cores"
            : `yes: servers on core ${pinning.server} (taskset -c ${pinning.server}); this process (in-process loops, autocannon) and vegeta on core ${pinning.generator}`,
        ],
      ],
      2,
    ),
  );

  // 1. In-process evaluation -------------------------------------------------
  const startedAt = Date.now();
  const { allowed, denied } = await workloads(startedAt);
  const active = await loadActivePolicy({
    bundlePath: embeddedBundlePath,
    dataPath: operatorData,
    entrypoint: defaultEntrypoint,
    configCheck: { entrypoint: defaultConfigEntrypoint, required: true },
  });
  const engine = new PolicyDecisionEngine(new PolicyHolder(active, "local"));

  print(heading("1. In-process evaluation (one thread, this process)"));
  print(
    `policy: embedded bundle ${active.revision} + examples/operator-data.yaml, entrypoint ${active.entrypoint}`,
  );
  print(
    `${inProcess.warmup} warm-up then ${inProcess.iterations} timed iterations per row (capped at ${inProcess.maxMs / 1000} s), each timed with process.hrtime.bigint`,
  );
  const inProcessRows: string[][] = [];
  const inProcessStats = new Map<string, Percentiles>();
  for (const workload of [allowed, denied]) {
    const input = buildPolicyInput(workload.resolved, Date.now());
    const raw = (): unknown => active.policy.evaluate(active.entrypoint, input);
    const decide = (): unknown => engine.decide(workload.resolved, Date.now());
    checkWorkload(workload, engine.decide(workload.resolved, Date.now()).allow);
    for (const [label, fn] of [
      ["(a) WasmPolicy.evaluate", raw],
      ["(b) PolicyDecisionEngine.decide", decide],
    ] as const) {
      const result = timePerCall(fn, inProcess);
      inProcessStats.set(`${label}|${workload.expectAllow ? "allow" : "deny"}`, result.latency);
      inProcessRows.push([
        `${label}, ${workload.name}`,
        whole(result.latency.count),
        whole(result.perSecond),
        ...latencyCells(result.latency, 1),
      ]);
    }
  }
  print();
  print(
    table(
      ["case", "iterations", "evals/s", "mean µs", "p50 µs", "p90 µs", "p99 µs", "max µs"],
      inProcessRows,
    ),
  );
  print(
    [
      "(b) adds to (a): input building (clock, scopes, server/tool), a random UUID and reading the result.",
      "Both start from the subject as the PDP resolves it here: asserted by the caller (no callers configured),",
      "marked authenticated; no token is verified.",
    ].join("\n"),
  );

  // Servers --------------------------------------------------------------------
  print(heading("Setup: the servers on 127.0.0.1"));
  const workDir = mkdtempSync(join(tmpdir(), "mcp-pdp-bench-"));
  scratch = workDir;
  const merged = mergeData(
    (await readBundle(embeddedBundlePath)).data,
    await readDataFile(operatorData),
  );
  const mergedFile = join(scratch, "operator-merged.json");
  writeFileSync(mergedFile, JSON.stringify(merged));

  const core = pinning?.server;
  // One worker each: on one core, a second worker could only take turns with the first.
  const [pdp, pdp22, floor, floor22, opaStarted] = await Promise.all([
    startPdp({ name: "PDP (Node 24)", root, build: node24, operatorData, workers: 1, cpu: core }),
    startPdp({ name: "PDP (Node 22)", root, build: node22, operatorData, workers: 1, cpu: core }),
    startFloor(root, node24, core),
    startFloor(root, node22, core),
    startOpa(root, opa, mergedFile, core),
  ]);
  const opaServer = opaStarted.server;
  const pin = core === undefined ? "" : `taskset -c ${core} `;
  for (const [server, build] of [
    [pdp, node24],
    [pdp22, node22],
  ] as const) {
    print(
      `${server.name}: ${pin}node src/main.ts  (${build.version}, pid ${server.pid}, ${server.baseUrl}, PDP_WORKERS=1, LOG_LEVEL=warn, PDP_DECISION_LOG=off)`,
    );
  }
  for (const [server, build] of [
    [floor, node24],
    [floor22, node22],
  ] as const) {
    print(
      `${server.name}: ${pin}node bench/floor-server.ts  (${build.version}, pid ${server.pid}): node:http, reads the body, JSON.parse, a fixed JSON answer`,
    );
  }
  print(
    `OPA: ${pin}opa ${opaStarted.args.join(" ").replace(scratch, "$TMP")}  (pid ${opaServer.pid})`,
  );
  print(
    "Decision logging is off on both: the PDP writes no decision records (PDP_DECISION_LOG=off; its metrics stay on),\n" +
      "and OPA logs decisions only when configured to (no decision_logs here). Section 6 measures the PDP with it on.",
  );
  if (pinning !== undefined) {
    print(`OPA's GOMAXPROCS follows its affinity mask: 1 core, like the PDP's one worker.`);
  }

  if (!(await opaLoadedSamePolicy(opaServer, merged))) {
    process.exitCode = 1;
    return;
  }
  for (const server of [pdp, pdp22]) {
    if (!(await serversAgree(server, opaServer, engine, [allowed, denied], startedAt))) {
      process.exitCode = 1;
      return;
    }
  }
  const pdpBody = JSON.stringify(allowed.request);
  // Response sizes, for the side-by-side note (the floor answers less than a decision).
  const answerBytes = new Map<Server, number>();
  for (const server of [floor, floor22, pdp]) {
    const response = await fetch(`${server.baseUrl}${evaluationPath}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: pdpBody,
      signal: AbortSignal.timeout(5000),
    });
    const text = await response.text();
    if (response.status !== 200) throw new Error(`${server.name} answered ${response.status}`);
    answerBytes.set(server, Buffer.byteLength(text));
  }

  // 2. and 3. HTTP scenarios, one core per server ------------------------------
  const opaRequestBody = opaBody(allowed, startedAt);
  const fixedName = `fixed ${whole(http.fixedRate)}/s`;
  const healthName = "GET /health";
  const generatorPlace =
    pinning === undefined
      ? "all cores, shared with the server (no pinning)"
      : `core ${pinning.generator}, the server alone on core ${pinning.server}`;
  print(heading("2./3. Per core: HTTP on loopback, typical allowed request"));
  print(
    [
      `PDP and floor: POST ${evaluationPath} with the AuthZEN request (${pdpBody.length} bytes).`,
      `OPA: POST ${opaDecisionPath} with {"input": <the document the PDP builds>} (${opaRequestBody.length} bytes).`,
      `Each server in turn: ${http.warmupS} s warm-up at saturation (autocannon, discarded), then`,
      `  - ${fixedName}: vegeta, ${whole(http.fixedRate)} requests/s evenly paced for ${http.fixedS} s (open model);`,
      `  - saturation: autocannon, ${http.saturationConnections} connections for ${http.saturationS} s;`,
      `  - ${healthName}: autocannon, ${http.saturationConnections} connections for ${http.floorS} s (PDP on Node 24 and OPA, for context; see below).`,
      `Load generators: vegeta (a child process) and autocannon (in this process), on ${generatorPlace}.`,
      `"gen CPU" is the generator's load: near 100 % means the generator, not the server, limits the rate.`,
      `"other": the share of the server's core that other processes used meanwhile (its busy time in /proc/stat less the`,
      "server's own CPU): this machine is shared, and a row with much other load is disturbed.",
    ].join("\n"),
  );

  const results = new Map<string, Loaded<LoadResult>>();
  const pacedRows: string[][] = [];
  const rows: string[][] = [];
  const targets = [
    { label: "floor 24", server: floor, path: evaluationPath, body: pdpBody },
    { label: "floor 22", server: floor22, path: evaluationPath, body: pdpBody },
    {
      label: "PDP 24",
      server: pdp,
      path: evaluationPath,
      body: pdpBody,
      health: true,
    },
    { label: "PDP 22", server: pdp22, path: evaluationPath, body: pdpBody },
    {
      label: "OPA",
      server: opaServer,
      path: opaDecisionPath,
      body: opaRequestBody,
      health: true,
    },
  ];
  for (const [index, target] of targets.entries()) {
    // Servers not yet measured wait, idle, on the same core: how much of it they took is printed.
    const idle = targets.slice(index + 1).map((t) => t.server);
    const idleCpuBefore = idle.map((s) => cpuSeconds(s.pid));
    const idleWallBefore = Date.now();
    const post = {
      server: target.server,
      path: target.path,
      method: "POST",
      body: target.body,
    } as const;
    await runLoad({ ...post, connections: http.saturationConnections, durationS: http.warmupS });

    const paced = await withOtherLoad(pinning?.server, () =>
      runPaced({
        vegeta,
        server: target.server,
        path: target.path,
        body: target.body,
        rate: http.fixedRate,
        durationS: http.fixedS,
        cpu: pinning?.generator,
        scratch: workDir,
      }),
    );
    results.set(`${target.label}|${fixedName}`, paced);
    pacedRows.push(pacedRow(`${target.label} ${fixedName}`, paced));

    const scenarios = [
      {
        name: "saturation",
        spec: { ...post, connections: http.saturationConnections, durationS: http.saturationS },
      },
      ...(target.health === true
        ? [
            {
              name: healthName,
              spec: {
                server: target.server,
                path: "/health",
                method: "GET",
                connections: http.saturationConnections,
                durationS: http.floorS,
              } as const,
            },
          ]
        : []),
    ];
    for (const scenario of scenarios) {
      const result = await withOtherLoad(pinning?.server, () => runLoad(scenario.spec));
      results.set(`${target.label}|${scenario.name}`, result);
      rows.push(loadRow(`${target.label} ${scenario.name}`, scenario.spec.connections, result));
    }
    if (idle.length > 0) {
      const used = idle.reduce((sum, s, i) => {
        const before = idleCpuBefore[i];
        const after = cpuSeconds(s.pid);
        return before === undefined || after === undefined ? sum : sum + after - before;
      }, 0);
      const share = used / ((Date.now() - idleWallBefore) / 1000);
      print(
        `(the ${idle.length} idle servers on the same core used ${fixed(share * 100, 2)} % of it during the ${target.label} runs)`,
      );
    }
    await stopServer(target.server);
  }

  print(
    heading(
      `Fixed rate (vegeta v${vegetaVersion}): ${whole(http.fixedRate)} requests/s for ${http.fixedS} s`,
    ),
  );
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
        "lag p99 ms",
        "lag max ms",
        "srv CPU %",
        "srv CPU µs/req",
        "gen CPU %",
        "other %",
      ],
      pacedRows,
    ),
  );
  print(
    [
      `vegeta paces requests evenly: request k is due (k + 1) x ${fixed(1000 / http.fixedRate, 3)} ms after the start and goes out whether or not`,
      "earlier ones have been answered (an idle worker takes it; when all are busy vegeta starts another worker, and",
      "Go's client opens another keep-alive connection if none is idle), so a slow response never delays later sends",
      "(open model). Its timers wake with about 1 ms granularity (an idle Go runtime waits in epoll_wait, in whole ms),",
      'so most requests go out 0-1 ms after their due time, and any that fell due meanwhile follow at once. "lag" is',
      "how far sends trailed the schedule (fitted to the earliest send, so a lower bound). Latency is per request, at",
      "ns resolution, from the moment a worker takes the request up (vegeta's result timestamp: the actual send, so",
      "lag is not included) to the last byte of the response body. Percentiles are computed here from every result",
      '(vegeta encode), not from vegeta report\'s t-digest estimates. "req/s": sends per second between the first',
      'and the last send; "errors": requests with no response (connection error or 10 s timeout). Requests carry',
      "Accept-Encoding: identity (Go's client would ask for gzip; autocannon asks for nothing), so neither server",
      "compresses its answer. CPU per request is higher than at saturation for every server: at this rate each request",
      "wakes an idle server, a cost that a full queue shares between requests.",
    ].join("\n"),
  );

  print(heading("Saturation and GET /health (autocannon)"));
  print(
    table(
      [
        "scenario",
        "conns",
        "req/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "non-2xx",
        "errors",
        "srv CPU %",
        "srv CPU µs/req",
        "gen CPU %",
        "other %",
      ],
      rows,
    ),
  );
  print(
    [
      "Latency: per response, write to last byte, from autocannon's hrtime timings (autocannon's own histogram has",
      `1 ms resolution). Each of the ${http.saturationConnections} connections sends its next request as soon as the previous answer arrives`,
      "(closed loop), so these latencies are those of a full queue: read them with req/s, not as response times.",
      `${healthName}: the PDP's dispatcher hands it to express (express serves only /health, /ready and /metrics),`,
      "so it is the cost of an express route, not a floor of the evaluation path, which never goes through",
      "express. OPA serves it from the same Go HTTP server as its data API. The floor is the node:http floor.",
    ].join("\n"),
  );

  // Side by side -----------------------------------------------------------------
  print(
    heading(
      `Per core, side by side (same Rego, same data, same input document; ${node24.version} and ${node22.version})`,
    ),
  );
  const get = (label: string, scenario: string): LoadResult | undefined =>
    results.get(`${label}|${scenario}`);
  const compare: [string, (r: LoadResult) => number | undefined, number][] = [
    ["decisions/s", (r) => r.rps, 0],
    ["p50 ms", (r) => r.latencyMs.p50, 3],
    ["p99 ms", (r) => r.latencyMs.p99, 3],
    ["srv CPU µs/decision", (r) => r.serverCpuPerRequestUs, 1],
  ];
  const columns = ["floor 24", "floor 22", "PDP 24", "PDP 22", "OPA"];
  const sideRows: string[][] = [];
  for (const scenario of [fixedName, "saturation"]) {
    for (const [metric, pick, decimals] of compare) {
      const value = (label: string): number | undefined => {
        const result = get(label, scenario);
        return result === undefined ? undefined : pick(result);
      };
      const show = (v: number | undefined): string =>
        decimals === 0 ? whole(v) : fixed(v, decimals);
      sideRows.push([
        `${scenario}: ${metric}`,
        ...columns.map((label) => show(value(label))),
        ratio(value("PDP 24"), value("OPA")),
        ratio(value("PDP 24"), value("floor 24")),
        ratio(value("PDP 22"), value("floor 22")),
        ratio(value("PDP 22"), value("PDP 24")),
      ]);
    }
  }
  print(
    table(
      ["metric", ...columns, "PDP/OPA (24)", "PDP/floor (24)", "PDP/floor (22)", "PDP 22/24"],
      sideRows,
    ),
  );
  print(`${fixedName} is vegeta, saturation autocannon. "24"/"22": the pinned Node builds`);
  print(
    `(scripts/ensure-node.sh). The floor answers a fixed JSON of ${whole(answerBytes.get(floor))} bytes, the PDP a decision of ${whole(answerBytes.get(pdp))} bytes.`,
  );

  // Where the time goes ----------------------------------------------------------
  print(heading("Where a PDP evaluation's CPU goes at saturation, Node 24 (estimate)"));
  const pdpSat = get("PDP 24", "saturation")?.serverCpuPerRequestUs;
  const floorSat = get("floor 24", "saturation")?.serverCpuPerRequestUs;
  const pdpHealth = get("PDP 24", healthName)?.serverCpuPerRequestUs;
  // Medians: on a shared machine one preempted or GC-paused call can move a mean of 20,000 by
  // tens of µs; the servers' GC is in their measured CPU (the "rest" row) anyway.
  const decideUs = inProcessStats.get("(b) PolicyDecisionEngine.decide|allow")?.p50;
  const rawUs = inProcessStats.get("(a) WasmPolicy.evaluate|allow")?.p50;
  if (
    pdpSat !== undefined &&
    floorSat !== undefined &&
    decideUs !== undefined &&
    rawUs !== undefined
  ) {
    const share = (us: number): string => `${fixed((100 * us) / pdpSat, 0)} %`;
    const rest = pdpSat - floorSat - decideUs;
    print(
      table(
        ["part", "µs/request", "share"],
        [
          ["server CPU per POST evaluation (measured, /proc)", fixed(pdpSat, 1), "100 %"],
          [
            "  floor: node:http, reading the body, JSON.parse, a reply (measured, /proc)",
            fixed(floorSat, 1),
            share(floorSat),
          ],
          ["  wasm evaluation (in-process median, (a))", fixed(rawUs, 1), share(rawUs)],
          [
            "  input building + UUID + result reading ((b) - (a))",
            fixed(decideUs - rawUs, 1),
            share(decideUs - rawUs),
          ],
          [
            "  rest: routing, schema, subject, metrics, the decision reply, GC (difference)",
            fixed(rest, 1),
            share(rest),
          ],
        ],
      ),
    );
    print(
      [
        "POST /access/v1/evaluation is served by the node:http dispatcher, without express. For context only, not",
        `subtracted: ${healthName}, an express route, costs ${fixed(pdpHealth, 1)} µs/request of server CPU (node:http + the dispatcher +`,
        "express), the floor of the routes express still serves.",
      ].join("\n"),
    );
    const opaSat = get("OPA", "saturation")?.serverCpuPerRequestUs;
    const opaFloor = get("OPA", healthName)?.serverCpuPerRequestUs;
    if (opaSat !== undefined && opaFloor !== undefined) {
      print(
        `OPA for comparison: ${fixed(opaSat, 1)} µs/request, of which ${fixed(opaFloor, 1)} µs is its GET /health on the same Go HTTP server and ` +
          `${fixed(opaSat - opaFloor, 1)} µs input parsing + Rego evaluation (topdown) + reply.`,
      );
    }
    print(
      "In-process medians were taken on the generator core while idle; treat the split as approximate.",
    );
  } else {
    print("n/a: CPU accounting (/proc) unavailable");
  }

  // The target -------------------------------------------------------------
  print(
    heading(
      "Target: server CPU per decision <= 1.5 x (floor CPU per request + in-process evaluation time)",
    ),
  );
  const targetRows: string[][] = [];
  for (const major of ["24", "22"]) {
    const server = get(`PDP ${major}`, "saturation")?.serverCpuPerRequestUs;
    const floorUs = get(`floor ${major}`, "saturation")?.serverCpuPerRequestUs;
    const bound =
      floorUs === undefined || rawUs === undefined ? undefined : 1.5 * (floorUs + rawUs);
    targetRows.push([
      `Node ${major}`,
      fixed(server, 1),
      fixed(floorUs, 1),
      fixed(rawUs, 1),
      fixed(bound, 1),
      ratio(server, floorUs),
      server === undefined || bound === undefined ? "n/a" : server <= bound ? "yes" : "NO",
      server === undefined || bound === undefined ? "n/a" : fixed(Math.max(0, server - bound), 1),
    ]);
  }
  print(
    table(
      [
        "node",
        "PDP CPU µs/decision",
        "floor CPU µs/request",
        "evaluate µs (in process)",
        "1.5 x (floor + evaluate)",
        "PDP/floor",
        "holds",
        "µs over the bound",
      ],
      targetRows,
    ),
  );
  print(
    [
      `At saturation, one core each, decision logging off. "evaluate": WasmPolicy.evaluate's median for the allowed`,
      `write in section 1, measured in this process (${process.version}) and used for both rows: the Node 22 row's bound`,
      "assumes the wasm evaluation costs the same on Node 22 (not measured in process there).",
    ].join("\n"),
  );

  // Whole machine and keep-alive pinning ------------------------------------------
  await runMachineBench({
    root,
    operatorData,
    pinning,
    build: node24,
    opa,
    mergedFile,
    pdpBody,
    opaBody: opaRequestBody,
    perCoreCpuUs: pdpSat,
    print,
  });

  // 4. and 5. Tokens ---------------------------------------------------------------
  const tokensOk = await runTokenBench({
    root,
    scratch,
    operatorData,
    pinning,
    engine,
    allowed,
    baseline: get("PDP 24", "saturation"),
    baselineDurationS: http.saturationS,
    print,
  });
  if (!tokensOk) process.exitCode = 1;

  // 6. Decision logging ------------------------------------------------------------
  const loggingOk = await runLoggingBench({
    root,
    scratch,
    operatorData,
    pinning,
    active,
    engine,
    allowed,
    print,
  });
  if (!loggingOk) process.exitCode = 1;
}

function checkWorkload(workload: Workload, allow: boolean): void {
  if (allow !== workload.expectAllow) {
    throw new Error(
      `the workload "${workload.name}" is ${allow ? "allowed" : "denied"}, expected ${workload.expectAllow ? "allowed" : "denied"}: fix bench/workload.ts`,
    );
  }
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
    fixed(r.sendLagMs.p99, 3),
    fixed(r.sendLagMs.max, 3),
    percent(r.serverCpuShare),
    fixed(r.serverCpuPerRequestUs, 1),
    percent(r.generatorCpuShare),
    percent(r.otherShare),
  ];
}

function loadRow(name: string, connections: number, r: Loaded<LoadResult>): string[] {
  return [
    name,
    String(connections),
    whole(r.rps),
    fixed(r.latencyMs.p50, 3),
    fixed(r.latencyMs.p90, 3),
    fixed(r.latencyMs.p99, 3),
    fixed(r.latencyMs.max, 3),
    whole(r.non2xx),
    whole(r.errors),
    percent(r.serverCpuShare),
    fixed(r.serverCpuPerRequestUs, 1),
    percent(r.generatorCpuShare),
    percent(r.otherShare),
  ];
}

async function postJson(url: string, body: string): Promise<{ status: number; body: unknown }> {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body,
    signal: AbortSignal.timeout(5000),
  });
  return { status: response.status, body: await response.json() };
}

async function getJson(url: string): Promise<unknown> {
  const response = await fetch(url, { signal: AbortSignal.timeout(5000) });
  if (!response.ok) throw new Error(`GET ${url}: ${response.status}`);
  return response.json();
}

/** OPA must hold exactly the PDP's data and only the policy modules (no tests). */
async function opaLoadedSamePolicy(opa: Server, merged: DataDocument): Promise<boolean> {
  const data = (await getJson(`${opa.baseUrl}/v1/data`)) as { result?: Record<string, unknown> };
  const { mcp: _rules, ...loadedData } = data.result ?? {};
  const policies = (await getJson(`${opa.baseUrl}/v1/policies`)) as { result?: { id: string }[] };
  const modules = (policies.result ?? []).map((p) => p.id.replace(/^.*\/rego\//, "rego/")).sort();
  const sameData = isDeepStrictEqual(loadedData, JSON.parse(JSON.stringify(merged)));
  const noTests = modules.every((m) => !m.endsWith("_test.rego") && !m.includes("/cases/"));
  print(`OPA modules: ${modules.join(", ")}`);
  print(
    sameData
      ? "OPA data: identical to the PDP's (bundle data.json deep-merged with examples/operator-data.yaml)."
      : `OPA data DIFFERS from the PDP's: ${JSON.stringify(loadedData)}`,
  );
  if (!noTests) print("OPA loaded test files: fix the --ignore flags.");
  return sameData && noTests && modules.length > 0;
}

/** Both servers (and the in-process engine) must answer the same decision for each workload. */
async function serversAgree(
  pdp: Server,
  opa: Server,
  engine: PolicyDecisionEngine,
  cases: readonly Workload[],
  nowMs: number,
): Promise<boolean> {
  const rows: string[][] = [];
  let agree = true;
  let orderDiffers = false;
  for (const workload of cases) {
    const fromPdp = await postJson(
      `${pdp.baseUrl}${evaluationPath}`,
      JSON.stringify(workload.request),
    );
    const fromOpa = await postJson(`${opa.baseUrl}${opaDecisionPath}`, opaBody(workload, nowMs));
    const pdpAnswer = pdpDecision(fromPdp.body);
    const opaAnswer = readPolicyAnswer((fromOpa.body as { result?: unknown }).result);
    // Only the answer: a Decision also carries its id, revision and bookkeeping (timings, input).
    const { allow, reasons, risk, obligations, stepUp } = engine.decide(workload.resolved, nowMs);
    const local: PolicyAnswer = { allow, reasons, risk, obligations, stepUp };
    const same =
      fromPdp.status === 200 &&
      fromOpa.status === 200 &&
      isDeepStrictEqual(unordered(pdpAnswer), unordered(opaAnswer)) &&
      isDeepStrictEqual(pdpAnswer, local);
    const sameOrder = isDeepStrictEqual(pdpAnswer.reasons, opaAnswer.reasons);
    agree &&= same;
    orderDiffers ||= !sameOrder;
    rows.push([
      workload.name,
      String(pdpAnswer.allow),
      String(opaAnswer.allow),
      pdpAnswer.reasons.map((r) => r.code).join(", ") || "-",
      opaAnswer.reasons.map((r) => r.code).join(", ") || "-",
      same ? "yes" : "NO",
    ]);
    if (!same) {
      print(`PDP (HTTP ${fromPdp.status}): ${JSON.stringify(pdpAnswer)}`);
      print(`OPA (HTTP ${fromOpa.status}): ${JSON.stringify(opaAnswer)}`);
      print(`in-process: ${JSON.stringify(local)}`);
    }
  }
  print();
  print(
    table(
      ["input", "PDP allow", "OPA allow", "PDP reasons (codes)", "OPA reasons (codes)", "same"],
      rows,
    ),
  );
  print(
    agree
      ? "PDP and OPA agree: same allow, same reasons (code, admin, user), risk and obligations for both typical inputs."
      : "PDP and OPA DISAGREE: no load is run against servers that do not decide the same.",
  );
  if (orderDiffers) {
    print(
      "Note: the reasons come in a different ORDER from the two evaluators (set iteration order is\n" +
        "evaluator-specific: wasm vs OPA's topdown); the comparison above is order-insensitive for reasons.",
    );
  }
  return agree;
}

/** The answer with its reasons in a canonical order, for an order-insensitive comparison. */
function unordered(answer: PolicyAnswer): PolicyAnswer {
  const key = (r: PolicyAnswer["reasons"][number]): string =>
    JSON.stringify([r.code, r.admin, r.user]);
  return { ...answer, reasons: [...answer.reasons].sort((a, b) => key(a).localeCompare(key(b))) };
}

/** The PolicyAnswer inside the PDP's AuthZEN response, read by the PDP's own result reader. */
function pdpDecision(body: unknown): PolicyAnswer {
  const { decision, context } = body as { decision: boolean; context: Record<string, unknown> };
  const { reasons, risk, obligations } = context;
  return readPolicyAnswer({ allow: decision, reasons, risk, obligations });
}

await runBenchmark(main, async () => {
  await stopTokenBench();
  if (scratch !== undefined) rmSync(scratch, { recursive: true, force: true });
  scratch = undefined;
});
