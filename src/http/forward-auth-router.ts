import { Router } from "express";
import { forwardAuthPrefix } from "../api/forward-auth-api.js";
import { rawBody, serve } from "./api-adapter.js";
import type { ApiHandler } from "./lean-listener.js";

/** Mounts the forward-auth endpoint for proxies: any method, `/forward-auth/<server>[/...]`. */
export function forwardAuthRouter(handler: ApiHandler, maxBodyBytes: number): Router {
  const router = Router();
  router.all(`${forwardAuthPrefix}*path`, rawBody(maxBodyBytes), serve(handler));
  return router;
}
