import type { RequestListener } from "node:http";
import { authzenPaths } from "../api/authzen-api.js";
import { searchPaths } from "../api/authzen-search-api.js";
import { forwardAuthPrefix } from "../api/forward-auth-api.js";
import { opaDataPath } from "../api/opa-data-api.js";
import type { Metrics, RouteLabel } from "../observability/metrics.js";

const exactRoutes = new Map<string, RouteLabel>([
  [authzenPaths.evaluation, "evaluation"],
  [authzenPaths.evaluations, "evaluations"],
  ...Object.values(searchPaths).map((path): [string, RouteLabel] => [path, "search"]),
  [authzenPaths.configuration, "metadata"],
  ["/health", "health"],
  ["/ready", "ready"],
  ["/metrics", "metrics"],
]);

/** The bounded route label of a request path. */
export function routeLabel(url: string | undefined): RouteLabel {
  const path = (url ?? "").split("?")[0] ?? "";
  const exact = exactRoutes.get(path);
  if (exact !== undefined) return exact;
  if (path.startsWith(forwardAuthPrefix)) return "forward_auth";
  if (path.startsWith(`${opaDataPath}/`)) return "opa_data";
  return "other";
}

/** Counts and times every HTTP request (route, method, status), whichever path serves it. */
export function instrument(listener: RequestListener, metrics: Metrics): RequestListener {
  return (req, res) => {
    const started = process.hrtime.bigint();
    res.on("finish", () => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      metrics.recordHttp(routeLabel(req.url), req.method ?? "", res.statusCode, seconds);
    });
    listener(req, res);
  };
}
