/**
 * The whole machine: the PDP with PDP_WORKERS=1 and 2 and OPA with every core,
 * nothing pinned, the load generator (this process) sharing the cores; then a
 * client holding only two keep-alive connections against two workers, which
 * per-connection balancing can pin to one worker. Each worker's share of the
 * requests comes from the PDP's /metrics when it labels requests by worker.
 */
import { runLoad, type LoadResult } from "./load.ts";
import { scrapeMetrics, sumByLabel } from "./metrics.ts";
import { setOwnAffinity, stopServer, type Server } from "./processes.ts";
import { fixed, heading, percent, table, whole } from "./report.ts";
import { startOpa, startPdp, type NodeBuild } from "./servers.ts";

export interface MachineBenchContext {
  root: string;
  operatorData: string;
  /** planPinning's result: this process is moved to every allowed core for the section. */
  pinning: { server: number; generator: number; all: string } | undefined;
  build: NodeBuild;
  opa: string;
  mergedFile: string;
  pdpBody: string;
  opaBody: string;
  /** The PDP's CPU per decision pinned to one core at saturation (section 2), in µs. */
  perCoreCpuUs: number | undefined;
  print: (text?: string) => void;
}

const sizes = {
  warmupS: 2,
  saturationS: 8,
  connections: 32,
  /** The keep-alive case: this many connections, each run opening new ones. */
  keepAliveConnections: 2,
  keepAliveRuns: 3,
  keepAliveS: 4,
};
const evaluationPath = "/access/v1/evaluation";
const opaDecisionPath = "/v1/data/mcp/authz/decision";
/** The counters a `worker` label is looked for on, in this order (per-worker request counts). */
const workerCounters = ["mcp_pdp_worker_http_requests_total"];

interface Row {
  name: string;
  connections: number;
  result: LoadResult;
  /** Requests per worker label during the run; empty when the PDP exposes none. */
  perWorker: Map<string, number>;
  isPdp: boolean;
}

export async function runMachineBench(ctx: MachineBenchContext): Promise<void> {
  const { print } = ctx;
  print(heading("Whole machine: every core, nothing pinned, the generator sharing the cores"));
  print(
    [
      `Each server in turn: ${sizes.warmupS} s warm-up, then autocannon, ${sizes.connections} connections for ${sizes.saturationS} s (saturation).`,
      `The PDP on ${ctx.build.version} with PDP_WORKERS=1 and =2; OPA with GOMAXPROCS = every core.`,
      "This process (autocannon, one JS thread) is moved to every core for this section.",
    ].join("\n"),
  );
  if (ctx.pinning !== undefined) setOwnAffinity(ctx.pinning.all);
  const rows: Row[] = [];
  try {
    for (const workers of [1, 2]) {
      const pdp = await startPdp({
        name: `PDP (PDP_WORKERS=${workers})`,
        root: ctx.root,
        build: ctx.build,
        operatorData: ctx.operatorData,
        workers,
        cpu: undefined,
      });
      try {
        const post = {
          server: pdp,
          path: evaluationPath,
          method: "POST",
          body: ctx.pdpBody,
        } as const;
        await runLoad({ ...post, connections: sizes.connections, durationS: sizes.warmupS });
        rows.push({
          name: `PDP, PDP_WORKERS=${workers}`,
          connections: sizes.connections,
          ...(await counted(pdp, () =>
            runLoad({ ...post, connections: sizes.connections, durationS: sizes.saturationS }),
          )),
          isPdp: true,
        });
        if (workers === 2) {
          // New connections each run: where the kernel puts two connections is a draw per run.
          for (let run = 1; run <= sizes.keepAliveRuns; run++) {
            rows.push({
              name: `PDP, PDP_WORKERS=2, keep-alive run ${run}`,
              connections: sizes.keepAliveConnections,
              ...(await counted(pdp, () =>
                runLoad({
                  ...post,
                  connections: sizes.keepAliveConnections,
                  durationS: sizes.keepAliveS,
                }),
              )),
              isPdp: true,
            });
          }
        }
      } finally {
        await stopServer(pdp);
      }
    }
    const { server: opa } = await startOpa(ctx.root, ctx.opa, ctx.mergedFile, undefined);
    try {
      const post = {
        server: opa,
        path: opaDecisionPath,
        method: "POST",
        body: ctx.opaBody,
      } as const;
      await runLoad({ ...post, connections: sizes.connections, durationS: sizes.warmupS });
      const result = await runLoad({
        ...post,
        connections: sizes.connections,
        durationS: sizes.saturationS,
      });
      rows.push({
        name: "OPA, all cores",
        connections: sizes.connections,
        result,
        perWorker: new Map(),
        isPdp: false,
      });
    } finally {
      await stopServer(opa);
    }
  } finally {
    if (ctx.pinning !== undefined) setOwnAffinity(ctx.pinning.generator);
  }

  print();
  print(
    table(
      [
        "server",
        "conns",
        "decisions/s",
        "p50 ms",
        "p99 ms",
        "srv CPU %",
        "srv CPU µs/decision",
        "gen CPU %",
        "requests per worker",
      ],
      rows.map((row) => [
        row.name,
        String(row.connections),
        whole(row.result.rps),
        fixed(row.result.latencyMs.p50, 3),
        fixed(row.result.latencyMs.p99, 3),
        percent(row.result.serverCpuShare),
        fixed(row.result.serverCpuPerRequestUs, 1),
        percent(row.result.generatorCpuShare),
        row.isPdp ? shares(row.perWorker) : "-",
      ]),
    ),
  );
  print(
    [
      `"srv CPU %" is of one core (200 % = both cores of a 2-core machine). "requests per worker": each worker's share of`,
      `the requests during the run, from the \`worker\` label of ${workerCounters.join(" or ")} on /metrics (n/a: no such label).`,
      `The keep-alive runs hold only ${sizes.keepAliveConnections} connections, as a proxy with a small keep-alive pool would: workers are`,
      "chosen per connection, so both connections may land on one worker; each run opens new ones.",
    ].join("\n"),
  );

  const cores = ctx.pinning === undefined ? undefined : ctx.pinning.all;
  print();
  print(
    [
      `What this machine (cores ${cores ?? "all"}) can and cannot show about scaling:`,
      "- It CAN show that PDP_WORKERS=2 serves on both cores (each worker's share above), and whether a decision costs",
      "  more CPU with two workers than with one (compare srv CPU µs/decision): contention between workers, the merged",
      "  /metrics and the kernel's spreading of connections would show up there.",
      "- It CANNOT show throughput scaling. The generator needs most of a core itself (gen CPU %), so with two workers",
      "  the PDP and autocannon compete for two cores: decisions/s with PDP_WORKERS=2 is bounded by what the generator",
      "  leaves, not by the PDP, and OPA on all cores meets the same ceiling. Measuring N-core scaling needs the",
      "  generator on another machine (or N + 1 cores and pinning).",
      "Estimated from CPU per decision instead, assuming it stays flat as workers are added (each worker has its own",
      "event loop and wasm instance and shares nothing on the decision path), with the generator elsewhere:",
    ].join("\n"),
  );
  const twoWorkers = rows.find((r) => r.name === "PDP, PDP_WORKERS=2")?.result
    .serverCpuPerRequestUs;
  const estimate = (cpuUs: number | undefined, n: number): string =>
    cpuUs === undefined ? "n/a" : whole((n * 1e6) / cpuUs);
  print();
  print(
    table(
      [
        "cores (workers)",
        `from the per-core CPU (${fixed(ctx.perCoreCpuUs, 1)} µs)`,
        `from PDP_WORKERS=2 here (${fixed(twoWorkers, 1)} µs)`,
      ],
      [1, 2, 4, 8, 16].map((n) => [
        String(n),
        `${estimate(ctx.perCoreCpuUs, n)} decisions/s`,
        `${estimate(twoWorkers, n)} decisions/s`,
      ]),
    ),
  );
  print(
    "Per-core cost = CPU per decision: N cores at 100 % give N x 1e6 / (µs per decision) decisions/s, an upper bound",
  );
  print(
    "(shared caches, memory bandwidth and the NIC's interrupts cost something on a real host).",
  );
}

/** Runs `load` and counts the PDP's requests per worker label across it (from /metrics). */
async function counted(
  pdp: Server,
  load: () => Promise<LoadResult>,
): Promise<{ result: LoadResult; perWorker: Map<string, number> }> {
  const before = await scrapeMetrics(pdp.baseUrl);
  const result = await load();
  const after = await scrapeMetrics(pdp.baseUrl);
  const perWorker = new Map<string, number>();
  if (before !== undefined && after !== undefined) {
    const counter = workerCounters.find((name) => sumByLabel(after, name, "worker").size > 0);
    if (counter !== undefined) {
      const start = sumByLabel(before, counter, "worker");
      for (const [worker, count] of sumByLabel(after, counter, "worker")) {
        perWorker.set(worker, count - (start.get(worker) ?? 0));
      }
    }
  }
  return { result, perWorker };
}

/** "0: 51 %, 1: 49 %" (the /metrics scrapes themselves are in the counts, a handful). */
function shares(perWorker: ReadonlyMap<string, number>): string {
  const total = [...perWorker.values()].reduce((sum, n) => sum + n, 0);
  if (perWorker.size === 0 || total === 0) return "n/a";
  return [...perWorker.entries()]
    .sort(([a], [b]) => a.localeCompare(b, "en", { numeric: true }))
    .map(([worker, n]) => `${worker}: ${fixed((100 * n) / total, 0)} %`)
    .join(", ");
}
