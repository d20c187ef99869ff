import type { RequestHandler } from "express";
import type { Registry } from "prom-client";

/** What the ops endpoints report; `ready` turns false while draining. */
export interface ServiceState {
  ready: () => boolean;
  revision: () => string;
}

/** GET /health: the process answers. */
export const healthHandler: RequestHandler = (_req, res) => {
  res.json({ status: "ok" });
};

/** GET /ready: 200 with the bundle revision, 503 while draining. */
export function readyHandler(state: ServiceState): RequestHandler {
  return (_req, res) => {
    if (state.ready()) {
      res.json({ status: "ready", revision: state.revision() });
    } else {
      res.status(503).json({ code: "not_ready", message: "the PDP is shutting down" });
    }
  };
}

/** GET /metrics: the Prometheus text exposition. */
export function metricsHandler(registry: Registry): RequestHandler {
  return async (_req, res) => {
    const body = await registry.metrics();
    res.set("content-type", registry.contentType).send(body);
  };
}
