import { Router } from "express";
import { authzenPaths, type AuthzenApi } from "../api/authzen-api.js";
import { methodNotAllowed, rawBody, serve } from "./api-adapter.js";

/** Mounts the AuthZEN Authorization API. */
export function authzenRouter(api: AuthzenApi, maxBodyBytes: number): Router {
  const router = Router();
  router
    .route(authzenPaths.evaluation)
    .post(rawBody(maxBodyBytes), serve(api.evaluation))
    .all(methodNotAllowed(["POST"]));
  router
    .route(authzenPaths.evaluations)
    .post(rawBody(maxBodyBytes), serve(api.evaluations))
    .all(methodNotAllowed(["POST"]));
  router
    .route(authzenPaths.configuration)
    .get(serve(api.configuration))
    .all(methodNotAllowed(["GET"]));
  return router;
}
