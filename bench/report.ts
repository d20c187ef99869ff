/** Plain-text tables and number formatting for the benchmark's output. */

/** Renders rows under headers; the first `leftColumns` columns are left-aligned, the others right-aligned. */
export function table(
  headers: readonly string[],
  rows: readonly (readonly string[])[],
  leftColumns = 1,
): string {
  const widths = headers.map((header, column) =>
    Math.max(header.length, ...rows.map((row) => (row[column] ?? "").length)),
  );
  const line = (cells: readonly string[]): string =>
    cells
      .map((cell, column) => {
        const width = widths[column] ?? cell.length;
        return column < leftColumns ? cell.padEnd(width) : cell.padStart(width);
      })
      .join("  ")
      .trimEnd();
  const rule = widths.map((width) => "-".repeat(width)).join("  ");
  return [line(headers), rule, ...rows.map(line)].join("\n");
}

export function heading(title: string): string {
  return `\n${title}\n${"=".repeat(title.length)}`;
}

/** A number with a fixed count of decimals; "n/a" when unknown. */
export function fixed(value: number | undefined, decimals: number): string {
  return value === undefined || !Number.isFinite(value) ? "n/a" : value.toFixed(decimals);
}

/** A whole number with thousands separators; "n/a" when unknown. */
export function whole(value: number | undefined): string {
  return value === undefined || !Number.isFinite(value)
    ? "n/a"
    : Math.round(value).toLocaleString("en-US");
}

/** a / b as "1.23×"; "n/a" when either is unknown or b is 0. */
export function ratio(a: number | undefined, b: number | undefined): string {
  if (a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0) {
    return "n/a";
  }
  return `${(a / b).toFixed(2)}x`;
}

export interface Percentiles {
  count: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

/** The named statistics of a latency summary, as table cells. */
export function latencyCells(
  latency: Percentiles,
  decimals: number,
  which: readonly ("mean" | "p50" | "p90" | "p99" | "max")[] = ["mean", "p50", "p90", "p99", "max"],
): string[] {
  return which.map((key) => fixed(latency[key], decimals));
}

/** A share (0..1) as a whole percentage, or n/a. */
export function percent(share: number | undefined): string {
  return share === undefined ? "n/a" : fixed(share * 100, 0);
}

/** Nearest-rank percentiles of the first `count` samples (sorted in place). */
export function percentiles(samples: Float64Array, count: number): Percentiles {
  const sorted = samples.subarray(0, count).sort();
  const at = (p: number): number => sorted[Math.max(0, Math.ceil((p / 100) * count) - 1)] ?? NaN;
  let sum = 0;
  for (const value of sorted) sum += value;
  return {
    count,
    mean: count === 0 ? NaN : sum / count,
    p50: at(50),
    p90: at(90),
    p99: at(99),
    max: count === 0 ? NaN : (sorted[count - 1] ?? NaN),
  };
}

/** A growable list of float samples, cheap to append to on a hot path. */
export class SampleBuffer {
  private data: Float64Array;
  length = 0;

  constructor(initialCapacity = 1 << 16) {
    this.data = new Float64Array(initialCapacity);
  }

  push(value: number): void {
    if (this.length === this.data.length) {
      const grown = new Float64Array(this.data.length * 2);
      grown.set(this.data);
      this.data = grown;
    }
    this.data[this.length++] = value;
  }

  summary(): Percentiles {
    return percentiles(this.data, this.length);
  }
}

/** Sizes of an in-process timing loop: warm-up calls, timed calls, and a time cap for each. */
export interface CallLoop {
  warmup: number;
  iterations: number;
  maxMs: number;
}

/** Times `fn` per call (process.hrtime.bigint) after a warm-up; bounded by iterations and by time. */
export function timePerCall(
  fn: () => unknown,
  loop: CallLoop,
): { perSecond: number; latency: Percentiles } {
  const warmupDeadline = Date.now() + loop.maxMs;
  for (let i = 0; i < loop.warmup && Date.now() < warmupDeadline; i++) fn();
  const samples = new SampleBuffer(loop.iterations);
  const deadline = process.hrtime.bigint() + BigInt(loop.maxMs) * 1_000_000n;
  const start = process.hrtime.bigint();
  let before = start;
  for (let i = 0; i < loop.iterations; i++) {
    fn();
    const after = process.hrtime.bigint();
    samples.push(Number(after - before) / 1000);
    before = after;
    if (after > deadline) break;
  }
  const elapsedS = Number(before - start) / 1e9;
  return { perSecond: samples.length / elapsedS, latency: samples.summary() };
}
