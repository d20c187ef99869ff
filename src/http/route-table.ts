import type { RequestHandler } from "express";
import type { ApiRequest, ApiResponse } from "../api/api-types.ts";
import type { Caller } from "../auth/caller.ts";
import { ApiError } from "../errors.ts";
import type { RouteLabel } from "../observability/metrics.ts";

/**
 * A transport-neutral handler. `query` is the raw query string (after `?`,
 * undecoded), for the few handlers that read one.
 */
export type ApiHandler = (
  request: ApiRequest,
  query?: string,
) => ApiResponse | Promise<ApiResponse>;

/**
 * Authenticates the PDP's own caller from the headers alone, for the
 * permission it is bound to; throws an ApiError (401/403) to refuse.
 */
export type CallerGuard = (request: ApiRequest) => Caller;

/** Renders a client error in one API's error shape. */
export type ErrorRenderer = (error: ApiError) => ApiResponse;

interface RouteCommon {
  /** The methods served, or "any" (forward-auth relays every method). A route serving GET serves HEAD too. */
  methods: readonly string[] | "any";
  /** The path, or with `prefix` the path and everything below it (`/v1/data` and `/v1/data/...`). */
  path: string;
  prefix?: boolean;
  /** The bounded `route` label of the HTTP metrics. */
  label: RouteLabel;
  /**
   * The caller the route needs, checked from the headers before any body is
   * read; undefined for a public route. The caller it returns travels in
   * `ApiRequest.caller`.
   */
  caller?: CallerGuard;
  /** The route's error shape: the PDP's `{code, message, field?}`, or its API's own (OPA's). */
  renderError: ErrorRenderer;
}

/** A route the dispatcher serves itself: the body is read (bounded), then the handler runs. */
export interface ApiRoute extends RouteCommon {
  handler: ApiHandler;
}

/** A route only express serves (ops, metrics): the dispatcher checks method and caller, express answers. */
export interface ExpressRoute extends RouteCommon {
  /** Express routes are exact paths: nothing below them is served. */
  prefix?: false;
  express: RequestHandler;
}

export type Route = ApiRoute | ExpressRoute;

export function isExpressRoute(route: Route): route is ExpressRoute {
  return "express" in route;
}

/** The PDP's own error shape: `{code, message, field?}` with the error's status and headers. */
export function pdpErrorResponse(error: ApiError): ApiResponse {
  return { status: error.status, headers: { ...error.headers }, body: error.toBody() };
}

/** Finds the route of a path: exact paths first (a map lookup), then prefixes in table order. */
export function routeFinder(routes: readonly Route[]): (path: string) => Route | undefined {
  const exact = new Map<string, Route>();
  const prefixes: Route[] = [];
  for (const route of routes) {
    if (route.prefix === true) {
      prefixes.push(route);
      continue;
    }
    // One route per path: a second one would be unreachable, which is a wiring bug.
    if (exact.has(route.path)) throw new Error(`two routes for ${route.path}`);
    exact.set(route.path, route);
  }
  return (path) =>
    exact.get(path) ??
    prefixes.find(
      (route) =>
        path === route.path ||
        path.startsWith(route.path.endsWith("/") ? route.path : `${route.path}/`),
    );
}

/** Whether a route serves a method (GET implies HEAD, as in express). */
export function servesMethod(route: Route, method: string): boolean {
  if (route.methods === "any") return true;
  return route.methods.includes(method) || (method === "HEAD" && route.methods.includes("GET"));
}

/** The 405 of a method a route does not serve, with its Allow header. */
export function methodNotAllowed(route: Route, method: string): ApiError {
  const allowed = route.methods === "any" ? [] : route.methods;
  return new ApiError(
    "method_not_allowed",
    `${method} is not allowed here; use ${allowed.join(" or ")}`,
    undefined,
    { allow: allowed.join(", ") },
  );
}
