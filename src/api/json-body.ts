import { ApiError } from "../errors.js";

export interface JsonBodyLimits {
  /** Largest accepted body, in bytes. */
  maxBytes: number;
  /** Deepest accepted nesting of objects and arrays. */
  maxDepth: number;
}

/**
 * Keys refused anywhere in a body. JSON.parse makes them harmless own
 * properties, but any later spread, merge or lookup in this process or in a
 * PEP's could turn them into prototype pollution; refusing them is cheaper
 * than proving every consumer safe.
 */
const forbiddenKeys = new Set(["__proto__", "constructor", "prototype"]);

const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Checks that a request declares a JSON body. Accepts `application/json` and
 * `application/*+json`, with a UTF-8 charset when one is named.
 */
export function requireJsonContentType(contentType: string | undefined): void {
  if (contentType === undefined) {
    throw new ApiError("unsupported_media_type", "Content-Type must be application/json");
  }
  const [mediaType = "", ...parameters] = contentType.toLowerCase().split(";");
  const type = mediaType.trim();
  if (type !== "application/json" && !/^application\/[a-z0-9.+-]+\+json$/.test(type)) {
    throw new ApiError(
      "unsupported_media_type",
      `Content-Type ${type || "(empty)"} is not application/json`,
    );
  }
  for (const parameter of parameters) {
    const [name, value] = parameter.split("=").map((part) => part.trim().replace(/^"|"$/g, ""));
    if (name === "charset" && value !== "utf-8" && value !== "utf8") {
      throw new ApiError(
        "unsupported_media_type",
        `charset ${value ?? ""} is not supported; send UTF-8`,
      );
    }
  }
}

/**
 * Parses a JSON request body that must be an object, refusing what a
 * well-behaved client never sends: invalid UTF-8, oversized or deeply nested
 * documents and hostile keys. Every refusal is an ApiError naming the problem.
 */
export function parseJsonObject(body: Buffer, limits: JsonBodyLimits): Record<string, unknown> {
  const parsed = parseJsonDocument(body, limits);
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    const kind = Array.isArray(parsed) ? "an array" : parsed === null ? "null" : typeof parsed;
    throw new ApiError("invalid_request", `body must be a JSON object, got ${kind}`, "");
  }
  return parsed as Record<string, unknown>;
}

/**
 * Parses any JSON document (a JSON-RPC batch is an array) with the same
 * refusals as parseJsonObject: size, UTF-8, syntax, depth, hostile keys.
 */
export function parseJsonDocument(body: Buffer, limits: JsonBodyLimits): unknown {
  if (body.length > limits.maxBytes) {
    throw new ApiError("body_too_large", `body exceeds ${limits.maxBytes} bytes`);
  }
  let text: string;
  try {
    text = utf8.decode(body);
  } catch {
    throw new ApiError("invalid_utf8", "body is not valid UTF-8");
  }
  if (text.trim().length === 0)
    throw new ApiError("empty_body", "body is empty; send a JSON object");
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new ApiError("invalid_json", `body is not valid JSON: ${(error as Error).message}`);
  }
  if (typeof parsed === "object" && parsed !== null) checkShape(parsed, limits.maxDepth);
  return parsed;
}

interface Frame {
  value: object;
  depth: number;
  parent: Frame | undefined;
  key: string;
}

/** Iterative walk (no recursion, so no stack overflow) enforcing depth and keys. */
function checkShape(root: object, maxDepth: number): void {
  const stack: Frame[] = [{ value: root, depth: 1, parent: undefined, key: "" }];
  for (let frame = stack.pop(); frame !== undefined; frame = stack.pop()) {
    if (frame.depth > maxDepth) {
      throw new ApiError(
        "body_too_deep",
        `body nests deeper than ${maxDepth} levels`,
        pointer(frame),
      );
    }
    const isArray = Array.isArray(frame.value);
    for (const key of Object.keys(frame.value)) {
      if (!isArray && forbiddenKeys.has(key)) {
        throw new ApiError(
          "forbidden_key",
          `key "${key}" is not accepted`,
          pointer({ ...frame, parent: frame, key }),
        );
      }
      const child: unknown = (frame.value as Record<string, unknown>)[key];
      if (typeof child === "object" && child !== null) {
        stack.push({ value: child, depth: frame.depth + 1, parent: frame, key });
      }
    }
  }
}

/** RFC 6901 JSON pointer of a frame. */
function pointer(frame: Frame): string {
  const parts: string[] = [];
  let current = frame;
  while (current.parent !== undefined) {
    parts.push(current.key.replaceAll("~", "~0").replaceAll("/", "~1"));
    current = current.parent;
  }
  return parts.length === 0 ? "" : `/${parts.reverse().join("/")}`;
}
