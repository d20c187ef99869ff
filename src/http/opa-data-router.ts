import { Router, type ErrorRequestHandler, type RequestHandler } from "express";
import { opaDataPath, opaError, type OpaDataApi } from "../api/opa-data-api.js";
import { ApiError } from "../errors.js";
import { rawBody, serve } from "./api-adapter.js";
import { requireCaller, type CallerCheck } from "./caller-guard.js";

/**
 * Mounts OPA's Data API: `/v1/data` and everything under it, any method (the
 * handler answers 405 itself), errors in OPA's shape. GET, HEAD and POST
 * authenticate the caller before the body is read; other methods are a 405
 * whatever their body, so it is not read at all.
 */
export function opaDataRouter(api: OpaDataApi, maxBodyBytes: number, callers: CallerCheck): Router {
  const router = Router();
  const paths = `${opaDataPath}{/*path}`;
  const handler: RequestHandler = (req, res, next) => {
    const query = req.originalUrl.indexOf("?");
    const raw = query === -1 ? undefined : req.originalUrl.slice(query + 1);
    return serve((request) => api(request, raw))(req, res, next);
  };
  router.all(
    paths,
    whenServed(requireCaller((request) => callers(request, "opa_data"), opaError)),
    whenServed(rawBody(maxBodyBytes)),
    handler,
  );
  router.use(paths, unreadableBody);
  return router;
}

/** The methods the Data API serves; the rest are a 405 from the handler. */
const servedMethods = new Set(["GET", "HEAD", "POST"]);

/** Runs `middleware` for the methods the Data API serves only. */
function whenServed(middleware: RequestHandler): RequestHandler {
  return (req, res, next) => {
    if (servedMethods.has(req.method)) {
      void middleware(req, res, next);
      return;
    }
    next();
  };
}

/** A body express could not read (too large, corrupt encoding) is OPA's invalid_parameter. */
const unreadableBody: ErrorRequestHandler = (error: unknown, _req, res, next) => {
  const status = (error as { status?: unknown } | null)?.status;
  if (error instanceof ApiError || typeof status !== "number" || status < 400 || status >= 500) {
    next(error);
    return;
  }
  const response = opaError(bodyRefusal((error as { type?: unknown }).type));
  res
    .status(response.status)
    .set(response.headers ?? {})
    .json(response.body);
};

/** body-parser's refusal (by its type) as the PDP's error. */
function bodyRefusal(type: unknown): ApiError {
  switch (type) {
    case "entity.too.large":
      return new ApiError(
        "body_too_large",
        "body exceeds the configured limit (PDP_MAX_BODY_BYTES)",
      );
    case "encoding.unsupported":
      return new ApiError("unsupported_media_type", "unsupported Content-Encoding");
    default:
      return new ApiError(
        "invalid_request",
        "the body could not be read (corrupt or mismatched Content-Encoding?)",
      );
  }
}
