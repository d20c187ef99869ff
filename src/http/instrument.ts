import type { ServerResponse } from "node:http";
import type { Metrics, RouteLabel } from "../observability/metrics.ts";

/**
 * Counts and times one HTTP request (route, method, status) when its response
 * finishes. The label is the caller's to give: the dispatcher's comes from
 * its route table, the probe listener's from its two paths.
 */
export function instrument(
  res: ServerResponse,
  metrics: Metrics,
  label: RouteLabel,
  method: string,
): void {
  const started = process.hrtime.bigint();
  res.on("finish", () => {
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    metrics.recordHttp(label, method, res.statusCode, seconds);
  });
}
