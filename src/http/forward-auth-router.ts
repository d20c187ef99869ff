import { Router } from "express";
import { forwardAuthPrefix } from "../api/forward-auth-api.js";
import { rawBody, serve } from "./api-adapter.js";
import { requireCaller, type CallerCheck } from "./caller-guard.js";
import type { ApiHandler } from "./lean-listener.js";

/**
 * Mounts the forward-auth endpoint for proxies: any method,
 * `/forward-auth/<server>[/...]`; the proxy is authenticated before its body is read.
 */
export function forwardAuthRouter(
  handler: ApiHandler,
  maxBodyBytes: number,
  callers: CallerCheck,
): Router {
  const router = Router();
  router.all(
    `${forwardAuthPrefix}*path`,
    requireCaller((request) => callers(request, "forward_auth")),
    rawBody(maxBodyBytes),
    serve(handler),
  );
  return router;
}
