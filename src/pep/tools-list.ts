import { isPlainObject } from "../protocol/mcp/authzen-items.ts";
import type { ToolAnnotations } from "../protocol/mcp/authzen-items.ts";
import { unavailableError } from "../protocol/mcp/answers.ts";
import type { JsonRpcId } from "../protocol/mcp/jsonrpc.ts";

/**
 * Rewrites one JSON-RPC message on its way to the client. Returns the same
 * object when nothing changes, so that callers can forward the original bytes.
 */
export type MessageRewriter = (message: unknown) => Promise<unknown>;

/** A tool of a `tools/list` result, as far as the decision needs it. */
export interface ListedTool {
  name: string;
  annotations: ToolAnnotations | undefined;
}

/** Decides, for each listed tool in order, whether the caller may call it. Rejects when it cannot. */
export type ToolsDecider = (tools: ListedTool[]) => Promise<boolean[]>;

/** A key for a JSON-RPC id that keeps 1 and "1" apart. */
export function idKey(id: JsonRpcId): string {
  return JSON.stringify(id);
}

/**
 * The rewriter of every JSON-RPC response a PEP lets through: a response whose
 * result carries a `tools` array, or answers one of the `tools/list` requests
 * with ids `pending`, keeps only the tools `decide` allows (entries without a
 * name are dropped) and says `cacheScope: "private"`; every other message
 * comes back as the same object. When `decide` rejects, the response becomes
 * a JSON-RPC error (-32003, `pdp_unavailable`): the client learns that the
 * list could not be authorized rather than receiving an unfiltered or
 * silently empty list.
 *
 * A list is recognised by its shape, not only by the id it claims to answer:
 * a stateful server can deliver a response on another stream than the POST
 * that asked (a resumed `GET` with `Last-Event-ID` replays stored events, and
 * a session's request ids can be reused or collide across POSTs), and those
 * ids are the client's to choose. So any result with a `tools` array is
 * treated as a tool list, on every stream; a server that puts `tools` in
 * another result gets that array filtered the same way.
 */
export function toolsListRewriter(
  pending: ReadonlySet<string>,
  decide: ToolsDecider,
  onError: (error: Error) => void = () => undefined,
): MessageRewriter {
  return async (message) => {
    if (!isPlainObject(message) || !isPlainObject(message.result)) return message;
    const { id, result } = message;
    const jsonRpcId = typeof id === "string" || typeof id === "number" ? id : null;
    const answersPending = jsonRpcId !== null && pending.has(idKey(jsonRpcId));
    if (!answersPending && !Array.isArray(result.tools)) return message;
    const listed = Array.isArray(result.tools) ? (result.tools as unknown[]) : [];

    const named: { entry: unknown; tool: ListedTool }[] = [];
    for (const entry of listed) {
      if (isPlainObject(entry) && typeof entry.name === "string" && entry.name !== "") {
        const annotations = isPlainObject(entry.annotations) ? entry.annotations : undefined;
        named.push({ entry, tool: { name: entry.name, annotations } });
      }
    }
    let allowed: boolean[] = [];
    if (named.length > 0) {
      try {
        allowed = await decide(named.map((n) => n.tool));
      } catch (error) {
        onError(error instanceof Error ? error : new Error(String(error)));
        return unavailableError(jsonRpcId);
      }
    }
    const tools = named.filter((_, index) => allowed[index] === true).map((n) => n.entry);
    // The list now depends on who asked: whatever scope the server declared (MCP 2026-07-28's
    // `cacheScope`, "public" when absent), no cache may serve it to another authorization context.
    // Older clients ignore the field (results are open objects in every revision); `ttlMs` stays.
    return { ...message, result: { ...result, tools, cacheScope: "private" } };
  };
}

/**
 * Rewrites one parsed JSON-RPC document: a message, or each message of a
 * batch (an array, in a JSON body or in one SSE event's data). Returns the
 * same value when nothing changed.
 */
async function rewriteDocument(document: unknown, rewrite: MessageRewriter): Promise<unknown> {
  if (!Array.isArray(document)) return rewrite(document);
  const messages = document as unknown[];
  const rewritten: unknown[] = [];
  for (const message of messages) rewritten.push(await rewrite(message));
  return rewritten.some((message, index) => message !== messages[index]) ? rewritten : document;
}

/**
 * Rewrites an `application/json` response body: one JSON-RPC message or a
 * batch of them. A body that is not JSON is returned unchanged (the client
 * cannot read it either).
 */
export async function rewriteJsonBody(text: string, rewrite: MessageRewriter): Promise<string> {
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch {
    return text;
  }
  const rewritten = await rewriteDocument(document, rewrite);
  return rewritten === document ? text : JSON.stringify(rewritten);
}

/**
 * Rewrites a `text/event-stream` body event by event, as it streams. Text is
 * fed in arbitrary pieces; each complete event (lines up to a blank line; any
 * of CRLF, LF, CR ends a line) whose `data` is a JSON-RPC message (or a batch
 * of them) goes through `rewrite`. Events are re-emitted with LF line ends; a changed message
 * replaces the event's data lines by one `data:` line in place, keeping the
 * `event:`, `id:` and `retry:` fields. What remains at the end of the stream
 * is treated as a last event.
 */
export class SseRewriter {
  private readonly rewrite: MessageRewriter;
  /** Text after the last complete line. */
  private partial = "";
  /** Lines of the event being read. */
  private lines: string[] = [];

  constructor(rewrite: MessageRewriter) {
    this.rewrite = rewrite;
  }

  /** Feeds text; resolves to the output for every event it completed. */
  async push(text: string): Promise<string> {
    this.partial += text;
    let output = "";
    let start = 0;
    for (;;) {
      const cr = this.partial.indexOf("\r", start);
      const lf = this.partial.indexOf("\n", start);
      if (cr === -1 && lf === -1) break;
      let end: number;
      let next: number;
      if (lf !== -1 && (cr === -1 || lf < cr)) {
        end = lf;
        next = lf + 1;
      } else {
        // A CR at the very end may be the first half of a CRLF: wait for more.
        if (cr === this.partial.length - 1) break;
        end = cr;
        next = this.partial[cr + 1] === "\n" ? cr + 2 : cr + 1;
      }
      const line = this.partial.slice(start, end);
      start = next;
      if (line === "") output += await this.dispatch();
      else this.lines.push(line);
    }
    this.partial = this.partial.slice(start);
    return output;
  }

  /** Ends the stream; resolves to the output for what was left. */
  async end(): Promise<string> {
    let rest = this.partial;
    this.partial = "";
    if (rest.endsWith("\r")) rest = rest.slice(0, -1);
    if (rest !== "") this.lines.push(rest);
    return this.lines.length === 0 ? "" : this.dispatch();
  }

  private async dispatch(): Promise<string> {
    const lines = this.lines;
    this.lines = [];
    // A blank line without an event (e.g. two in a row) is kept as is.
    if (lines.length === 0) return "\n";
    const dataLines = lines.filter(isDataLine);
    if (dataLines.length === 0) return `${lines.join("\n")}\n\n`;
    const data = dataLines.map(dataValue).join("\n");
    let message: unknown;
    try {
      message = JSON.parse(data);
    } catch {
      return `${lines.join("\n")}\n\n`;
    }
    const rewritten = await rewriteDocument(message, this.rewrite);
    if (rewritten === message) return `${lines.join("\n")}\n\n`;
    const output: string[] = [];
    let replaced = false;
    for (const line of lines) {
      if (!isDataLine(line)) output.push(line);
      else if (!replaced) {
        output.push(`data: ${JSON.stringify(rewritten)}`);
        replaced = true;
      }
    }
    return `${output.join("\n")}\n\n`;
  }
}

function isDataLine(line: string): boolean {
  return line === "data" || line.startsWith("data:");
}

function dataValue(line: string): string {
  const value = line.slice("data:".length);
  return value.startsWith(" ") ? value.slice(1) : value;
}
