import { Router } from "express";
import type { Registry } from "prom-client";
import { methodNotAllowed } from "./api-adapter.js";
import { requireCaller } from "./caller-guard.js";
import type { OpsGuard } from "./ops-router.js";

/** GET /metrics: the Prometheus text exposition, behind its guard (see app.ts: closed once callers are configured). */
export function metricsRouter(registry: Registry, guard: OpsGuard): Router {
  const router = Router();
  router
    .route("/metrics")
    .get(requireCaller(guard), async (_req, res) => {
      const body = await registry.metrics();
      res.set("content-type", registry.contentType).send(body);
    })
    .all(methodNotAllowed(["GET"]));
  return router;
}
