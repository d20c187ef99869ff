/**
 * The README's "MCP conformance" table, rendered from the runs themselves:
 * one row per scenario, one column per setup, each cell the scenario's checks
 * counted by status. The conformance test fails when README.md does not hold
 * the table of the run it just made, so the README shows what was run.
 */
import { join } from "node:path";
import { format, resolveConfig } from "prettier";
import { repoRoot } from "../support/opa.ts";
import { statusCounts, type ConformanceRun } from "./conformance-runner.ts";

/** The suite's statuses, in the order a cell names them, and what the table calls them. */
const statusWords: [status: string, one: string, many: string][] = [
  ["SUCCESS", "passed", "passed"],
  ["FAILURE", "failed", "failed"],
  ["WARNING", "warning", "warnings"],
  ["INFO", "note", "notes"],
];

function cell(run: ConformanceRun, scenario: string): string {
  const checks = run.scenarios.get(scenario);
  if (checks === undefined) return "not run";
  const counts = statusCounts(checks);
  const parts = statusWords.flatMap(([status, one, many]) => {
    const count = counts[status] ?? 0;
    return count === 0 ? [] : [`${count} ${count === 1 ? one : many}`];
  });
  const unknown = Object.keys(counts).filter(
    (status) => !statusWords.some(([known]) => known === status),
  );
  return [...parts, ...unknown.map((status) => `${counts[status] ?? 0} ${status}`)].join(", ");
}

/**
 * The markdown table: `scenarios` in the suite's order, one column per named
 * run, laid out as prettier lays out README.md's tables (its check runs on it).
 */
export async function resultsTable(
  scenarios: string[],
  runs: [title: string, ConformanceRun][],
): Promise<string> {
  const header = `| Scenario | ${runs.map(([title]) => title).join(" | ")} |`;
  const rule = `|${" --- |".repeat(runs.length + 1)}`;
  const rows = scenarios.map(
    (scenario) => `| \`${scenario}\` | ${runs.map(([, run]) => cell(run, scenario)).join(" | ")} |`,
  );
  const readme = join(repoRoot, "README.md");
  const options = (await resolveConfig(readme)) ?? {};
  return format([header, rule, ...rows].join("\n"), { ...options, parser: "markdown" });
}
