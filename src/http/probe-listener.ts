import type { RequestListener } from "node:http";
import type { ApiResponse } from "../api/api-types.ts";
import type { Metrics } from "../observability/metrics.ts";
import type { Readiness } from "./ops-handlers.ts";
import { instrument } from "./instrument.ts";
import { writeJson } from "./response-writer.ts";

const ok: ApiResponse = { status: 200, body: { status: "ok" } };
const ready: ApiResponse = { status: 200, body: { status: "ready" } };

/**
 * The probe port (PDP_PROBE_PORT): `/health` and `/ready` for orchestrators,
 * plain HTTP and without credentials in every configuration, because a
 * kubelet or Docker HEALTHCHECK has neither an API key nor a client
 * certificate. It answers nothing but liveness and readiness: no revision,
 * no configuration, 404 for every other path, so an open port reveals only
 * that a PDP is up. The main listener keeps its own `/health` and `/ready`
 * (behind the ops guard, with the bundle revision).
 */
export function probeListener(
  state: { readiness: () => Readiness },
  metrics: Metrics,
): RequestListener {
  return (req, res) => {
    const path = (req.url ?? "").split("?")[0];
    const probe = path === "/health" ? "health" : path === "/ready" ? "ready" : undefined;
    instrument(res, metrics, probe ?? "other", req.method ?? "");
    const write = (response: ApiResponse): void => {
      writeJson(res, response, () => undefined);
    };
    if (probe === undefined) {
      write({
        status: 404,
        body: { code: "not_found", message: "the probe port serves /health and /ready" },
      });
      return;
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      write({
        status: 405,
        headers: { allow: "GET, HEAD" },
        body: { code: "method_not_allowed", message: "use GET" },
      });
      return;
    }
    if (probe === "health") {
      write(ok);
      return;
    }
    // The same readiness as the main /ready (draining, policy_stale), without the revision.
    const readiness = state.readiness();
    write(
      readiness.ready
        ? ready
        : { status: 503, body: { code: readiness.code, message: readiness.message } },
    );
  };
}
