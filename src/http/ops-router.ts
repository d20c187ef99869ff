import { Router } from "express";
import { methodNotAllowed } from "./api-adapter.js";
import { requireCaller, type RequestGuard } from "./caller-guard.js";

/** What the ops endpoints report; `ready` turns false while draining. */
export interface ServiceState {
  ready: () => boolean;
  revision: () => string;
}

/** Checks the credentials of an ops request; throws an ApiError (401/403) to refuse. */
export type OpsGuard = RequestGuard;

/** Liveness and readiness on the main listener, behind the ops guard (open unless ops credentials are configured). */
export function opsRouter(state: ServiceState, guard: OpsGuard): Router {
  const router = Router();
  const authorize = requireCaller(guard);
  router
    .route("/health")
    .get(authorize, (_req, res) => {
      res.json({ status: "ok" });
    })
    .all(methodNotAllowed(["GET"]));
  router
    .route("/ready")
    .get(authorize, (_req, res) => {
      if (state.ready()) {
        res.json({ status: "ready", revision: state.revision() });
      } else {
        res.status(503).json({ code: "not_ready", message: "the PDP is shutting down" });
      }
    })
    .all(methodNotAllowed(["GET"]));
  return router;
}
