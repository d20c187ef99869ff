import { Router } from "express";
import { methodNotAllowed } from "./api-adapter.js";

/** What the ops endpoints report; `ready` turns false while draining. */
export interface ServiceState {
  ready: () => boolean;
  revision: () => string;
}

/** Liveness and readiness. */
export function opsRouter(state: ServiceState): Router {
  const router = Router();
  router
    .route("/health")
    .get((_req, res) => {
      res.json({ status: "ok" });
    })
    .all(methodNotAllowed(["GET"]));
  router
    .route("/ready")
    .get((_req, res) => {
      if (state.ready()) {
        res.json({ status: "ready", revision: state.revision() });
      } else {
        res.status(503).json({ code: "not_ready", message: "the PDP is shutting down" });
      }
    })
    .all(methodNotAllowed(["GET"]));
  return router;
}
