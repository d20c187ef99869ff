import { ApiError } from "../errors.ts";
import { findDuplicateKey } from "./json-duplicate-keys.ts";
import { findInexactNumber, jsonPointerAt } from "./json-numbers.ts";

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
 * What to do with a lone UTF-16 surrogate (`"\ud800"`, a high one without its
 * low half or the reverse), which JSON.parse keeps but no UTF-8 consumer can:
 * the wasm policy fails on it, so the PDP's own APIs `refuse` it (400
 * `invalid_unicode`); the OPA Data API `replace`s each with U+FFFD, as Go's
 * encoding/json and so OPA read it.
 */
export type LoneSurrogates = "refuse" | "replace";

export interface JsonReadOptions {
  /** Default `refuse`. */
  loneSurrogates?: LoneSurrogates;
  /**
   * Refuse a key that occurs twice in one object (400 `duplicate_key`). For
   * bodies another parser reads too (a relayed MCP request): the PDP and OPA
   * both keep the last value, but the MCP server's parser need not.
   */
  refuseDuplicateKeys?: boolean;
}

/**
 * A lone surrogate can only come from a `\u` escape (the UTF-8 decoder refuses
 * encoded ones), so a text without `\uD8`…`\uDF` needs no string walk.
 * False positives (an escaped backslash before `uD800`) only cost the walk.
 */
const surrogateEscape = /\\u[dD][89a-fA-F]/;
const loneSurrogate = /\p{Cs}/u;
const loneSurrogates = /\p{Cs}/gu;

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
export function parseJsonObject(
  body: Buffer,
  limits: JsonBodyLimits,
  options: JsonReadOptions = {},
): Record<string, unknown> {
  const parsed = parseJsonDocument(body, limits, options);
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    const kind = Array.isArray(parsed) ? "an array" : parsed === null ? "null" : typeof parsed;
    throw new ApiError("invalid_request", `body must be a JSON object, got ${kind}`, "");
  }
  return parsed as Record<string, unknown>;
}

/**
 * Parses any JSON document (a JSON-RPC batch is an array) with the same
 * refusals as parseJsonObject: size, UTF-8, syntax, depth, hostile keys, lone
 * surrogates (unless replaced) and numbers a double cannot hold exactly.
 */
export function parseJsonDocument(
  body: Buffer,
  limits: JsonBodyLimits,
  options: JsonReadOptions = {},
): unknown {
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
  if (surrogateEscape.test(text)) {
    parsed = handleLoneSurrogates(parsed, options.loneSurrogates ?? "refuse");
  }
  if (options.refuseDuplicateKeys === true) {
    const duplicate = findDuplicateKey(text);
    if (duplicate !== undefined) {
      throw new ApiError(
        "duplicate_key",
        `key ${JSON.stringify(duplicate.key.slice(0, 64))} occurs twice in one object`,
        jsonPointerAt(text, duplicate.offset),
      );
    }
  }
  // The wasm policy compares doubles, OPA's evaluator exact decimals: refuse what they read differently.
  const inexact = findInexactNumber(text);
  if (inexact !== undefined) {
    const shown =
      inexact.literal.length > 40 ? `${inexact.literal.slice(0, 40)}…` : inexact.literal;
    throw new ApiError(
      "number_unrepresentable",
      `number ${shown} cannot be represented exactly as a double (too many digits, or out of range)`,
      jsonPointerAt(text, inexact.offset),
    );
  }
  return parsed;
}

/**
 * The reversed path (keys and indices, innermost first) of the first lone
 * surrogate in a string or key, or undefined. Recursive, but only below the
 * depth checkShape allowed; allocates nothing unless it finds one.
 */
function loneSurrogateAt(value: unknown): { path: string[]; inKey: boolean } | undefined {
  if (typeof value === "string") {
    return loneSurrogate.test(value) ? { path: [], inKey: false } : undefined;
  }
  if (typeof value !== "object" || value === null) return undefined;
  if (Array.isArray(value)) {
    for (let index = 0; index < value.length; index++) {
      const found = loneSurrogateAt(value[index]);
      if (found !== undefined) {
        found.path.push(String(index));
        return found;
      }
    }
    return undefined;
  }
  for (const [key, child] of Object.entries(value)) {
    if (loneSurrogate.test(key)) return { path: [key], inKey: true };
    const found = loneSurrogateAt(child);
    if (found !== undefined) {
      found.path.push(key);
      return found;
    }
  }
  return undefined;
}

/**
 * The value with every lone surrogate in its strings and keys replaced by
 * U+FFFD, as Go's encoding/json reads `\ud800`. Replacing can make two keys
 * equal; the later one wins, as in Go.
 */
function replaceLoneSurrogates(value: unknown): unknown {
  if (typeof value === "string") return value.replace(loneSurrogates, "\ufffd");
  if (typeof value !== "object" || value === null) return value;
  if (Array.isArray(value)) return value.map(replaceLoneSurrogates);
  // fromEntries defines own properties: no key can reach a prototype setter.
  return Object.fromEntries(
    Object.entries(value).map(([key, child]) => [
      key.replace(loneSurrogates, "\ufffd"),
      replaceLoneSurrogates(child),
    ]),
  );
}

/** Applies the LoneSurrogates choice to a parsed document. */
function handleLoneSurrogates(parsed: unknown, mode: LoneSurrogates): unknown {
  if (mode === "replace") return replaceLoneSurrogates(parsed);
  const found = loneSurrogateAt(parsed);
  if (found === undefined) return parsed;
  const field = found.path
    .reverse()
    // The pointer must not carry the lone surrogate on to the client or the logs.
    .map(
      (part) =>
        `/${part.replace(loneSurrogates, "\ufffd").replaceAll("~", "~0").replaceAll("/", "~1")}`,
    )
    .join("");
  throw new ApiError(
    "invalid_unicode",
    `${found.inKey ? "a key" : "a string"} holds a lone UTF-16 surrogate escape (\\uD800-\\uDFFF without its pair)`,
    field,
  );
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
    if (Array.isArray(frame.value)) {
      // Indices, not Object.keys: no string per element of a long array of numbers.
      const items = frame.value as unknown[];
      for (let index = 0; index < items.length; index++) {
        const child = items[index];
        if (typeof child === "object" && child !== null) {
          stack.push({ value: child, depth: frame.depth + 1, parent: frame, key: String(index) });
        }
      }
      continue;
    }
    for (const key of Object.keys(frame.value)) {
      if (forbiddenKeys.has(key)) {
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
