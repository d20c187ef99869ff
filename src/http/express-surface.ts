import express, { type ErrorRequestHandler, type Express, type RequestHandler } from "express";
import type { FailedRequest } from "./dispatcher.ts";
import { internalErrorResponse, writeJson } from "./response-writer.ts";
import { isExpressRoute, type Route } from "./route-table.ts";

/**
 * The express app behind the dispatcher, mounted from the same route table:
 * only the table's express routes (ops, metrics), reached only through the
 * dispatcher, which has already matched the path, checked the method,
 * authenticated the caller and assigned the request id. Express reads no
 * body. A handler that fails, or passes a request on unanswered, is a bug:
 * logged, answered 500.
 */
export function expressSurface(
  routes: readonly Route[],
  onError: (error: unknown, request: FailedRequest) => void,
): Express {
  const app = express();
  app.disable("x-powered-by");
  app.set("etag", false);
  app.set("query parser", false);
  // The dispatcher matched the path exactly; express must not widen it.
  app.set("case sensitive routing", true);
  app.set("strict routing", true);
  for (const route of routes) if (isExpressRoute(route)) app.all(route.path, route.express);
  const failed = (error: unknown, req: express.Request, res: express.Response): void => {
    try {
      onError(error, {
        requestId: String(res.getHeader("x-request-id") ?? ""),
        method: req.method,
        path: req.path,
      });
    } catch {
      // The client still gets its 500.
    }
    writeJson(res, internalErrorResponse, () => undefined);
  };
  const unanswered: RequestHandler = (req, res) => {
    failed(new Error(`express route ${req.path} passed the request on unanswered`), req, res);
  };
  const errorHandler: ErrorRequestHandler = (error: unknown, req, res, next) => {
    if (res.headersSent) {
      next(error);
      return;
    }
    failed(error, req, res);
  };
  app.use(unanswered);
  app.use(errorHandler);
  return app;
}
