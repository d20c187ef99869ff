import type { OutgoingHttpHeaders, ServerResponse } from "node:http";
import { rewriteJsonBody, SseRewriter, type MessageRewriter } from "./tools-list.ts";

type Method = (...args: unknown[]) => unknown;
type Mode = "undecided" | "json" | "sse" | "pass";
const patched = ["writeHead", "write", "end", "flushHeaders"] as const;

/**
 * Lets `rewrite` see, and replace, every JSON-RPC message a handler writes to
 * `res`, whichever way the MCP SDK answers: `application/json`
 * (`enableJsonResponse: true`: the whole body is held back, rewritten and sent
 * with a corrected `Content-Length`) or `text/event-stream` (headers go out at
 * once, events are rewritten as they stream, in order). Any other content type
 * or a status other than 200 is passed through untouched. It patches
 * `writeHead`, `write`, `end` and `flushHeaders` of this one response, which
 * is what `@hono/node-server` (used by the SDK's Node transport) and express's
 * `res.send` call. If rewriting fails the response is destroyed: the client
 * never receives what could not be filtered.
 */
export function interceptResponse(
  res: ServerResponse,
  rewrite: MessageRewriter,
  onError: (error: Error) => void = () => undefined,
): void {
  const original = {} as Record<(typeof patched)[number], Method>;
  for (const name of patched) original[name] = Reflect.get(res, name) as Method;
  const call = (name: (typeof patched)[number], ...args: unknown[]): unknown =>
    Reflect.apply(original[name], res, args);
  const restore = () => {
    for (const name of patched) Reflect.set(res, name, original[name]);
  };

  let mode: Mode = "undecided";
  let status: number | undefined;
  let reason: string | undefined;
  let headers: OutgoingHttpHeaders = {};
  const chunks: Buffer[] = [];
  const decoder = new TextDecoder("utf-8");
  const sse = new SseRewriter(rewrite);
  let queue: Promise<void> = Promise.resolve();
  let failed = false;

  const enqueue = (step: () => Promise<void>) => {
    queue = queue.then(async () => {
      if (failed) return;
      try {
        await step();
      } catch (error) {
        failed = true;
        onError(error instanceof Error ? error : new Error(String(error)));
        res.destroy();
      }
    });
  };

  const decide = (statusCode: number, contentType: unknown) => {
    const essence = typeof contentType === "string" ? mediaType(contentType) : undefined;
    if (statusCode === 200 && essence === "application/json") mode = "json";
    else if (statusCode === 200 && essence === "text/event-stream") mode = "sse";
    else mode = "pass";
    if (mode === "sse") res.removeHeader("content-length");
  };

  const writeHead = (...args: unknown[]): unknown => {
    const parsed = parseWriteHead(args);
    if (mode === "undecided") {
      decide(
        parsed.status,
        headerOf(parsed.headers, "content-type") ?? res.getHeader("content-type"),
      );
    }
    if (mode === "pass") {
      restore();
      return call("writeHead", ...args);
    }
    status = parsed.status;
    reason = parsed.reason;
    headers = withoutContentLength(parsed.headers);
    if (mode === "sse") {
      call("writeHead", ...writeHeadArgs(status, reason, headers));
    }
    return res;
  };

  const write = (...args: unknown[]): boolean => {
    if (mode === "undecided") decide(res.statusCode, res.getHeader("content-type"));
    if (mode === "pass") {
      restore();
      return call("write", ...args) as boolean;
    }
    const { chunk, callback } = parseWriteArgs(args);
    if (mode === "json") {
      if (chunk !== undefined) chunks.push(chunk);
      callback?.();
      return true;
    }
    const text = chunk === undefined ? "" : decoder.decode(chunk, { stream: true });
    enqueue(async () => {
      const output = await sse.push(text);
      if (output !== "") call("write", output);
      callback?.();
    });
    return true;
  };

  const end = (...args: unknown[]): unknown => {
    if (mode === "undecided") decide(res.statusCode, res.getHeader("content-type"));
    if (mode === "pass") {
      restore();
      return call("end", ...args);
    }
    const { chunk, callback } = parseWriteArgs(args);
    if (mode === "json") {
      if (chunk !== undefined) chunks.push(chunk);
      enqueue(async () => {
        const body = await rewriteJsonBody(Buffer.concat(chunks).toString("utf8"), rewrite);
        restore();
        res.removeHeader("content-length");
        const final = { ...headers, "content-length": Buffer.byteLength(body) };
        call("writeHead", ...writeHeadArgs(status ?? res.statusCode, reason, final));
        call("end", body, callback);
      });
    } else {
      const text =
        (chunk === undefined ? "" : decoder.decode(chunk, { stream: true })) + decoder.decode();
      enqueue(async () => {
        const output = (await sse.push(text)) + (await sse.end());
        restore();
        if (output !== "") call("write", output);
        call("end", callback);
      });
    }
    return res;
  };

  const flushHeaders = (): void => {
    if (mode === "undecided") decide(res.statusCode, res.getHeader("content-type"));
    if (mode === "pass") restore();
    // A held-back JSON answer must not send its headers (and a stale length) early.
    if (mode !== "json") call("flushHeaders");
  };

  Reflect.set(res, "writeHead", writeHead);
  Reflect.set(res, "write", write);
  Reflect.set(res, "end", end);
  Reflect.set(res, "flushHeaders", flushHeaders);
}

function mediaType(contentType: string): string {
  return (contentType.split(";")[0] ?? "").trim().toLowerCase();
}

/** writeHead(status[, reason][, headers]) with headers as an object or a flat [k, v, …] list. */
function parseWriteHead(args: unknown[]): {
  status: number;
  reason: string | undefined;
  headers: OutgoingHttpHeaders;
} {
  const status = typeof args[0] === "number" ? args[0] : 200;
  const reason = typeof args[1] === "string" ? args[1] : undefined;
  const raw = typeof args[1] === "string" ? args[2] : args[1];
  const headers: OutgoingHttpHeaders = {};
  if (Array.isArray(raw)) {
    for (let index = 0; index + 1 < raw.length; index += 2) {
      const key = String(raw[index]).toLowerCase();
      const value = raw[index + 1] as string | number | string[];
      const existing = headers[key];
      headers[key] =
        existing === undefined
          ? value
          : [...(Array.isArray(existing) ? existing : [String(existing)]), String(value)];
    }
  } else if (typeof raw === "object" && raw !== null) {
    for (const [key, value] of Object.entries(raw as OutgoingHttpHeaders)) {
      if (value !== undefined) headers[key.toLowerCase()] = value;
    }
  }
  return { status, reason, headers };
}

function headerOf(headers: OutgoingHttpHeaders, name: string): unknown {
  return headers[name];
}

function withoutContentLength(headers: OutgoingHttpHeaders): OutgoingHttpHeaders {
  const { "content-length": _dropped, ...rest } = headers;
  return rest;
}

function writeHeadArgs(
  status: number,
  reason: string | undefined,
  headers: OutgoingHttpHeaders,
): unknown[] {
  return reason === undefined ? [status, headers] : [status, reason, headers];
}

/** write/end(chunk[, encoding][, callback]) or end(callback). */
function parseWriteArgs(args: unknown[]): {
  chunk: Buffer | undefined;
  callback: (() => void) | undefined;
} {
  const [first, second, third] = args;
  const callback = [first, second, third].find(
    (arg): arg is () => void => typeof arg === "function",
  );
  if (first === undefined || first === null || typeof first === "function") {
    return { chunk: undefined, callback };
  }
  if (typeof first === "string") {
    const encoding = typeof second === "string" ? (second as BufferEncoding) : "utf8";
    return { chunk: Buffer.from(first, encoding), callback };
  }
  if (first instanceof Uint8Array) {
    // A copy: the writer may reuse its buffer once write() returns.
    return { chunk: Buffer.from(first), callback };
  }
  // Node itself refuses any other chunk type.
  throw new TypeError("a response chunk must be a string or a Uint8Array");
}
