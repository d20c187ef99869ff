import { Router, type RequestHandler } from "express";
import type { ApiRequest } from "../api/api-types.js";
import { methodNotAllowed } from "./api-adapter.js";
import { tlsClientOf } from "./tls-client.js";

/** What the ops endpoints report; `ready` turns false while draining. */
export interface ServiceState {
  ready: () => boolean;
  revision: () => string;
}

/** Checks the credentials of an ops request; throws an ApiError (401/403) to refuse. */
export type OpsGuard = (request: ApiRequest) => unknown;

/** Express middleware running the ops guard; a refusal goes to the error handler. */
export function opsGuardMiddleware(guard: OpsGuard): RequestHandler {
  return (req, _res, next) => {
    const tlsClient = tlsClientOf(req.socket);
    guard({
      method: req.method,
      path: req.path,
      headers: req.headers,
      body: Buffer.alloc(0),
      ...(tlsClient === undefined ? {} : { tlsClient }),
    });
    next();
  };
}

/** Liveness and readiness, behind the ops guard (open unless ops credentials are configured). */
export function opsRouter(state: ServiceState, guard: OpsGuard): Router {
  const router = Router();
  const authorize = opsGuardMiddleware(guard);
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
