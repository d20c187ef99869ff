import { Router } from "express";
import { authzenPaths, type AuthzenApi } from "../api/authzen-api.js";
import { searchKinds } from "../api/authzen-schemas.js";
import { searchPaths, type AuthzenSearchApi } from "../api/authzen-search-api.js";
import { methodNotAllowed, rawBody, serve } from "./api-adapter.js";
import { requireCaller, type CallerCheck } from "./caller-guard.js";

/** Mounts the AuthZEN Authorization API; the decision routes authenticate the caller before reading a body. */
export function authzenRouter(
  api: AuthzenApi,
  maxBodyBytes: number,
  callers: CallerCheck,
  search: AuthzenSearchApi,
): Router {
  const router = Router();
  const caller = requireCaller((request) => callers(request, "authzen"));
  router
    .route(authzenPaths.evaluation)
    .post(caller, rawBody(maxBodyBytes), serve(api.evaluation))
    .all(methodNotAllowed(["POST"]));
  router
    .route(authzenPaths.evaluations)
    .post(caller, rawBody(maxBodyBytes), serve(api.evaluations))
    .all(methodNotAllowed(["POST"]));
  for (const kind of searchKinds) {
    router
      .route(searchPaths[kind])
      .post(caller, rawBody(maxBodyBytes), serve(search[kind]))
      .all(methodNotAllowed(["POST"]));
  }
  router
    .route(authzenPaths.configuration)
    .get(serve(api.configuration))
    .all(methodNotAllowed(["GET"]));
  return router;
}
