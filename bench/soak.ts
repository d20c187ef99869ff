/**
 * Memory soak: SOAK_DECISIONS decisions (default 10 million) with varied
 * inputs (users, tools, risk classes, devices, networks; allowed and denied)
 * against the PDP on every core (PDP_WORKERS = available cores), as fast as it
 * answers. Every SOAK_SAMPLE_S seconds (default 5) the PDP's resident memory
 * (VmRSS of /proc/<pid>/status, its child processes included) and its heap
 * (nodejs_heap_size_used_bytes on /metrics, summed over workers) are sampled.
 * Memory is flat when every RSS sample after the warm-up (the first fifth of
 * the run) is within ±10 % of their median. Not a test: it prints the figures,
 * and exits 1 only when requests failed or the inputs were not varied.
 *
 * Usage: npm run bench:soak   (SOAK_DECISIONS=200000 npm run bench:soak for a short try)
 */
import { availableParallelism, cpus } from "node:os";
import { dirname, join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import type { AccessRequest } from "../src/decision/decision.ts";
import { runBenchmark } from "./lifecycle.ts";
import { runLoad } from "./load.ts";
import { scrapeMetrics, sumByLabel, sumOf } from "./metrics.ts";
import { rssBytes, type Server } from "./processes.ts";
import { fixed, heading, table, whole } from "./report.ts";
import { nodeBuild, startPdp } from "./servers.ts";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const operatorData = join(root, "examples", "operator-data.yaml");
const evaluationPath = "/access/v1/evaluation";

const decisions = positiveInteger("SOAK_DECISIONS", 10_000_000);
const sampleS = positiveInteger("SOAK_SAMPLE_S", 5);
const connections = 32;
/** Share of the samples (the first ones) that are warm-up, left out of the flatness check. */
const warmupShare = 0.2;
/** Allowed deviation of each post-warm-up RSS sample from their median. */
const flatWithin = 0.1;
/** Sample rows printed at most (evenly spaced; the summary uses all samples). */
const printedSamples = 20;

const heapMetric = "mcp_pdp_nodejs_heap_size_used_bytes";
const decisionsMetric = "mcp_pdp_decisions_total";

const print = (text = ""): void => {
  process.stdout.write(`${text}\n`);
};

interface Sample {
  seconds: number;
  decisions: number | undefined;
  rss: number | undefined;
  heap: number | undefined;
}

function positiveInteger(name: string, fallback: number): number {
  const text = process.env[name];
  if (text === undefined || text === "") return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value <= 0) {
    throw new Error(`${name} must be a positive whole number, got ${JSON.stringify(text)}`);
  }
  return value;
}

/**
 * The varied requests: three scope sets x two acr values (the users), three
 * device trusts, six tools (read, write and destructive ones, and one outside
 * the catalog), two networks: 216 bodies, each with its own user and session id.
 */
function variants(nowMs: number): string[] {
  const scopes = [
    "openid mcp:read",
    "openid mcp:read mcp:write",
    "openid mcp:read mcp:write mcp:admin",
  ];
  const acrs = ["pwd", "mfa"];
  const trusts = ["compliant", "managed", "unmanaged"];
  const tools = [
    "files/read_file",
    "files/read_dir",
    "files/write_file",
    "files/delete_file",
    "files/delete_dir",
    "shell/run_command",
  ];
  const ips = ["10.1.2.3", "192.168.7.9"];
  const bodies: string[] = [];
  for (const scope of scopes) {
    for (const acr of acrs) {
      for (const trust of trusts) {
        for (const tool of tools) {
          for (const ip of ips) {
            const n = bodies.length;
            const request: AccessRequest = {
              subject: {
                type: "user",
                id: `user-${n}@example.com`,
                properties: {
                  scope,
                  acr,
                  auth_time: Math.floor(nowMs / 1000) - 120,
                  client_id: "mcp-gateway",
                },
              },
              action: { name: "tools/call" },
              resource: { type: "tool", id: tool },
              context: { ip, device: { id: `device-${n}`, trust }, session: { id: `s-${n}` } },
            };
            bodies.push(JSON.stringify(request));
          }
        }
      }
    }
  }
  return bodies;
}

/** Each body once, outside the soak: how many are allowed, and every answer a 200. */
async function decideEach(
  pdp: Server,
  bodies: readonly string[],
): Promise<{ allow: number; deny: number }> {
  let allow = 0;
  let deny = 0;
  for (const body of bodies) {
    const response = await fetch(`${pdp.baseUrl}${evaluationPath}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
      signal: AbortSignal.timeout(5000),
    });
    const answer = (await response.json()) as { decision?: unknown };
    if (response.status !== 200)
      throw new Error(`a soak input answered ${response.status}: ${body}`);
    if (answer.decision === true) allow++;
    else deny++;
  }
  return { allow, deny };
}

async function sample(pdp: Server, startedNs: bigint): Promise<Sample> {
  const text = await scrapeMetrics(pdp.baseUrl);
  return {
    seconds: Number(process.hrtime.bigint() - startedNs) / 1e9,
    decisions: text === undefined ? undefined : sumOf(text, decisionsMetric),
    rss: rssBytes(pdp.pid),
    heap: text === undefined ? undefined : sumOf(text, heapMetric),
  };
}

const mib = (bytes: number | undefined): string =>
  bytes === undefined ? "n/a" : fixed(bytes / 2 ** 20, 1);

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[middle] ?? NaN)
    : ((sorted[middle - 1] ?? NaN) + (sorted[middle] ?? NaN)) / 2;
}

/** Least-squares slope of y over x. */
function slope(points: readonly [number, number][]): number {
  const n = points.length;
  if (n < 2) return NaN;
  const mx = points.reduce((s, [x]) => s + x, 0) / n;
  const my = points.reduce((s, [, y]) => s + y, 0) / n;
  const num = points.reduce((s, [x, y]) => s + (x - mx) * (y - my), 0);
  const den = points.reduce((s, [x]) => s + (x - mx) ** 2, 0);
  return den === 0 ? NaN : num / den;
}

/** min, max, median and the largest deviation from the median (as a share) of the post-warm-up values. */
function spread(values: readonly number[]): {
  min: number;
  max: number;
  median: number;
  deviation: number;
} {
  const m = median(values);
  const min = Math.min(...values);
  const max = Math.max(...values);
  return { min, max, median: m, deviation: Math.max(m - min, max - m) / m };
}

async function main(): Promise<void> {
  const build = nodeBuild(root, "24");
  const workers = availableParallelism();
  print(heading("mcp-pdp memory soak"));
  print(
    table(
      ["fact", "value"],
      [
        ["node (the PDP)", `${build.version} (${build.node})`],
        ["cpu", `${cpus()[0]?.model ?? "unknown"}, ${workers} available cores, nothing pinned`],
        ["decisions", `${whole(decisions)} (SOAK_DECISIONS)`],
        ["load", `autocannon in this process, ${connections} connections, as fast as answered`],
        [
          "sampling",
          `every ${sampleS} s (SOAK_SAMPLE_S): VmRSS from /proc, ${heapMetric} from /metrics`,
        ],
      ],
      2,
    ),
  );
  const pdp = await startPdp({
    name: `PDP (PDP_WORKERS=${workers})`,
    root,
    build,
    operatorData,
    workers,
    cpu: undefined,
  });
  const bodies = variants(Date.now());
  const checked = await decideEach(pdp, bodies);
  print(
    `PDP: node src/main.ts, PDP_WORKERS=${workers}, PDP_DECISION_LOG=off (pid ${pdp.pid}); ` +
      `${bodies.length} distinct inputs, ${checked.allow} allowed and ${checked.deny} denied when each was sent once.`,
  );
  if (checked.allow === 0 || checked.deny === 0) {
    print(
      "The inputs are not varied (all allowed or all denied): fix variants() in bench/soak.ts.",
    );
    process.exitCode = 1;
    return;
  }
  const metricsBefore = (await scrapeMetrics(pdp.baseUrl)) ?? "";

  const samples: Sample[] = [];
  // Each sample also goes to stderr as it is taken: a long soak cut short still shows its trend.
  const record = (s: Sample): void => {
    samples.push(s);
    process.stderr.write(
      `soak: t ${fixed(s.seconds, 0)} s, ${whole(s.decisions)} decisions, RSS ${mib(s.rss)} MiB, heap used ${mib(s.heap)} MiB\n`,
    );
  };
  const startedNs = process.hrtime.bigint();
  let next = 0;
  const loadDone = new AbortController();
  record(await sample(pdp, startedNs));
  const sampler = (async () => {
    while (!loadDone.signal.aborted) {
      // Aborted when the load ends: the last sample is taken then, below, not a period later.
      const slept = await sleep(sampleS * 1000, true, { signal: loadDone.signal }).catch(
        () => false,
      );
      if (slept) record(await sample(pdp, startedNs));
    }
  })();
  const result = await runLoad({
    server: pdp,
    path: evaluationPath,
    method: "POST",
    nextBody: () => bodies[next++ % bodies.length] ?? "",
    connections,
    amount: decisions,
    // A cap only: at 1,000 decisions/s the run would still end.
    durationS: Math.ceil(decisions / 1000) + 60,
  });
  loadDone.abort();
  await sampler;
  record(await sample(pdp, startedNs));
  const metricsAfter = (await scrapeMetrics(pdp.baseUrl)) ?? "";

  const delta = (label: string): string => {
    const before = sumByLabel(metricsBefore, decisionsMetric, label);
    const after = sumByLabel(metricsAfter, decisionsMetric, label);
    return [...after.entries()]
      .map(([key, n]) => `${key} ${whole(n - (before.get(key) ?? 0))}`)
      .join(", ");
  };
  print(heading("Load"));
  print(
    table(
      ["figure", "value"],
      [
        ["decisions sent", whole(result.completed)],
        ["decisions/s", whole(result.rps)],
        [
          "p50 / p99 / max ms",
          `${fixed(result.latencyMs.p50, 3)} / ${fixed(result.latencyMs.p99, 3)} / ${fixed(result.latencyMs.max, 3)}`,
        ],
        ["non-2xx / errors", `${whole(result.non2xx)} / ${whole(result.errors)}`],
        ["server CPU µs/decision", fixed(result.serverCpuPerRequestUs, 1)],
        ["outcomes (mcp_pdp_decisions_total)", delta("outcome") || "n/a"],
        ["risk classes (same)", delta("risk") || "n/a"],
      ],
      2,
    ),
  );

  print(heading("Memory samples"));
  const step = Math.max(1, Math.ceil(samples.length / printedSamples));
  const shown = samples.filter((_, i) => i % step === 0 || i === samples.length - 1);
  print(
    table(
      ["t s", "decisions", "RSS MiB", "heap used MiB"],
      shown.map((s) => [fixed(s.seconds, 0), whole(s.decisions), mib(s.rss), mib(s.heap)]),
    ),
  );
  const afterWarmup = samples.slice(Math.max(1, Math.floor(samples.length * warmupShare)));
  const summary: string[][] = [];
  let flat: boolean | undefined;
  for (const [name, pick] of [
    ["RSS", (s: Sample) => s.rss],
    ["heap used", (s: Sample) => s.heap],
  ] as const) {
    const points = afterWarmup.flatMap((s): [number, number][] => {
      const value = pick(s);
      return value === undefined || s.decisions === undefined ? [] : [[s.decisions, value]];
    });
    if (points.length < 2) {
      summary.push([name, "n/a", "n/a", "n/a", "n/a", "n/a", "n/a"]);
      continue;
    }
    const s = spread(points.map(([, v]) => v));
    const within = s.deviation <= flatWithin;
    if (name === "RSS") flat = within;
    summary.push([
      name,
      String(points.length),
      mib(s.min),
      mib(s.median),
      mib(s.max),
      `±${fixed(s.deviation * 100, 1)} %`,
      `${fixed((slope(points) * 1e6) / 2 ** 20, 2)} MiB`,
    ]);
  }
  print();
  print(
    table(
      [
        "after warm-up",
        "samples",
        "min MiB",
        "median MiB",
        "max MiB",
        "largest deviation",
        "trend per 1M decisions",
      ],
      summary,
    ),
  );
  print(
    `Warm-up: the first ${fixed(warmupShare * 100, 0)} % of the samples. ` +
      (flat === undefined
        ? "RSS could not be read."
        : `RSS ${flat ? "IS" : "is NOT"} flat within ±${fixed(flatWithin * 100, 0)} % of its median after warm-up.`),
  );
  if (result.errors > 0 || result.non2xx > 0) process.exitCode = 1;
}

await runBenchmark(main, () => undefined);
