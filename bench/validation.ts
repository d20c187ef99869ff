/**
 * The cost of validating AuthZEN request shapes, in process (no HTTP, no JSON
 * parse, no policy): µs per request for the benchmark's typical evaluation
 * request (bench/workload.ts, the one the README's figures use) and for a
 * 100-item evaluations batch (envelope + every item with its defaults).
 *
 * Usage: node bench/validation.ts [rounds]. Prints medians over rounds of
 * many calls each, so one GC pause or scheduler hiccup does not move them.
 */
import { parseAccessRequest, parseEvaluationsRequest } from "../src/api/authzen-schemas.ts";
import { workloads } from "./workload.ts";

const rounds = Number(process.argv[2] ?? 200);
const nowMs = Date.UTC(2026, 0, 5, 12, 0, 0);
const { allowed } = await workloads(nowMs);

/** Parsed JSON, as the API gets it: a fresh document, not the object the workload built. */
const typical = JSON.parse(JSON.stringify(allowed.request)) as Record<string, unknown>;

const tools = ["files/read_file", "files/write_file", "files/delete_file", "files/list_dir"];
const batch = JSON.parse(
  JSON.stringify({
    subject: allowed.request.subject,
    action: allowed.request.action,
    context: allowed.request.context,
    evaluations: Array.from({ length: 100 }, (_, i) => ({
      resource: { type: "tool", id: tools[i % tools.length] },
    })),
  }),
) as Record<string, unknown>;

const entityKeys = ["subject", "action", "resource", "context"] as const;

/** What the batch handler validates per item: the item over the envelope's defaults (AuthZEN §7.1). */
function validateBatch(body: Record<string, unknown>): number {
  const envelope = parseEvaluationsRequest(body);
  let valid = 0;
  for (const [index, item] of (envelope.evaluations ?? []).entries()) {
    const merged: Record<string, unknown> = {};
    for (const key of entityKeys) {
      const value = item[key] ?? envelope[key];
      if (value !== undefined) merged[key] = value;
    }
    parseAccessRequest(merged, `/evaluations/${index}`);
    valid++;
  }
  return valid;
}

/** Median µs per call of `run` over `rounds` rounds of `calls` calls, after a warm-up. */
function medianMicros(calls: number, run: () => unknown): number {
  for (let i = 0; i < calls * 5; i++) run();
  const perCall: number[] = [];
  for (let round = 0; round < rounds; round++) {
    const started = process.hrtime.bigint();
    for (let i = 0; i < calls; i++) run();
    perCall.push(Number(process.hrtime.bigint() - started) / 1000 / calls);
  }
  perCall.sort((a, b) => a - b);
  return perCall[Math.floor(perCall.length / 2)] ?? Number.NaN;
}

if (validateBatch(batch) !== 100) throw new Error("the batch should validate in full");
const single = medianMicros(2000, () => parseAccessRequest(typical));
const hundred = medianMicros(50, () => validateBatch(batch));
console.log(`validation, median of ${String(rounds)} rounds (node ${process.version})`);
console.log(`  typical evaluation request:   ${single.toFixed(2)} µs`);
console.log(
  `  100-item evaluations batch:   ${hundred.toFixed(1)} µs (${(hundred / 100).toFixed(2)} µs per item)`,
);
