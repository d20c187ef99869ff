/**
 * Filtering tools/list responses: the message rewriter, the JSON and SSE body
 * forms, and the interception of a real node:http response written the ways
 * the SDK (through @hono/node-server) and express write them.
 */
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { interceptResponse } from "../../src/pep/response-interceptor.ts";
import {
  rewriteJsonBody,
  SseRewriter,
  toolsListRewriter,
  type ListedTool,
  type MessageRewriter,
} from "../../src/pep/tools-list.ts";

const tools = [
  { name: "read_file", annotations: { readOnlyHint: true } },
  { name: "write_file", inputSchema: { type: "object" } },
  { name: "delete_repo", annotations: { destructiveHint: true } },
];

function listResponse(id: number | string, listed: unknown[] = tools): Record<string, unknown> {
  return { jsonrpc: "2.0", id, result: { tools: listed, nextCursor: "c2" } };
}

/** The same response after filtering: only `kept`, and never cacheable for another user. */
function filteredResponse(id: number | string, kept: unknown[]): Record<string, unknown> {
  return { jsonrpc: "2.0", id, result: { tools: kept, nextCursor: "c2", cacheScope: "private" } };
}

/** Allows the tools named `allowed`; records what it was asked. */
function decider(allowed: string[], asked: ListedTool[][] = []) {
  return (listed: ListedTool[]) => {
    asked.push(listed);
    return Promise.resolve(listed.map((tool) => allowed.includes(tool.name)));
  };
}

const readOnly = toolsListRewriter(new Set(["1"]), decider(["read_file"]));

describe("toolsListRewriter", () => {
  test("keeps only the allowed tools of a pending tools/list response, and the rest of the result", async () => {
    const asked: ListedTool[][] = [];
    const rewrite = toolsListRewriter(new Set(["1"]), decider(["read_file", "delete_repo"], asked));
    assert.deepEqual(await rewrite(listResponse(1)), filteredResponse(1, [tools[0], tools[2]]));
    // One decision call with every tool, each with its annotations from the listing.
    assert.deepEqual(asked, [
      [
        { name: "read_file", annotations: { readOnlyHint: true } },
        { name: "write_file", annotations: undefined },
        { name: "delete_repo", annotations: { destructiveHint: true } },
      ],
    ]);
  });

  test('a list the server declared cacheable for everyone ("public") becomes private; its ttlMs stays', async () => {
    const declared = {
      jsonrpc: "2.0",
      id: 1,
      result: { tools, ttlMs: 60000, cacheScope: "public", resultType: "complete" },
    };
    assert.deepEqual(await readOnly(declared), {
      jsonrpc: "2.0",
      id: 1,
      result: { tools: [tools[0]], ttlMs: 60000, cacheScope: "private", resultType: "complete" },
    });
    // Even when the caller may see every tool: the list was still decided for this caller.
    const everything = toolsListRewriter(new Set(["1"]), decider(tools.map((t) => t.name)));
    const all = (await everything(declared)) as { result: Record<string, unknown> };
    assert.equal(all.result.cacheScope, "private");
    assert.equal((all.result.tools as unknown[]).length, tools.length);
  });

  test("other messages come back as the same object", async () => {
    for (const message of [
      { jsonrpc: "2.0", id: 2, result: { content: [{ type: "text", text: "ran" }] } },
      { jsonrpc: "2.0", id: 2, result: { tools: { read_file: {} } } }, // not a list
      { jsonrpc: "2.0", id: 1, error: { code: -32601, message: "no" } },
      { jsonrpc: "2.0", method: "notifications/message", params: {} },
      // A server's request (sampling with tools) is no tools/list result.
      { jsonrpc: "2.0", id: 9, method: "sampling/createMessage", params: { tools } },
      { jsonrpc: "2.0", id: 1, result: [listResponse(1).result] },
      "text",
      null,
    ]) {
      assert.equal(await readOnly(message), message);
    }
  });

  test("a result carrying tools is filtered whatever request it claims to answer", async () => {
    // What a resumed stream replays, a response routed to another POST's stream, an id the
    // client reused or made collide: the id is the client's to choose, the shape is the server's.
    for (const id of [2, "1", "tools-list-of-someone-else", 0]) {
      assert.deepEqual(await readOnly(listResponse(id)), filteredResponse(id, [tools[0]]), `${id}`);
    }
    const noId = { jsonrpc: "2.0", result: { tools } };
    assert.deepEqual(await readOnly(noId), {
      jsonrpc: "2.0",
      result: { tools: [tools[0]], cacheScope: "private" },
    });
    // A server's own result that happens to carry a `tools` array is filtered the same way.
    const custom = { jsonrpc: "2.0", id: 4, result: { tools: ["read_file", tools[1]], page: 1 } };
    assert.deepEqual(await readOnly(custom), {
      jsonrpc: "2.0",
      id: 4,
      result: { tools: [], page: 1, cacheScope: "private" },
    });
  });

  test("a pending tools/list answered without a tools array becomes an empty private list", async () => {
    assert.deepEqual(await readOnly({ jsonrpc: "2.0", id: 1, result: { nextCursor: "c2" } }), {
      jsonrpc: "2.0",
      id: 1,
      result: { nextCursor: "c2", tools: [], cacheScope: "private" },
    });
  });

  test("entries without a name are dropped; an empty list asks nothing", async () => {
    const asked: ListedTool[][] = [];
    const rewrite = toolsListRewriter(new Set(["1"]), decider(["read_file"], asked));
    const rewritten = (await rewrite(listResponse(1, [{ title: "x" }, 5, tools[0]]))) as {
      result: { tools: unknown[] };
    };
    assert.deepEqual(rewritten.result.tools, [tools[0]]);
    asked.length = 0;
    await rewrite(listResponse(1, []));
    assert.deepEqual(asked, []);
  });

  test("a failing decision turns the response into a JSON-RPC error (fail closed)", async () => {
    const errors: Error[] = [];
    const rewrite = toolsListRewriter(
      new Set(["1"]),
      () => Promise.reject(new Error("PDP down")),
      (error) => errors.push(error),
    );
    assert.deepEqual(await rewrite(listResponse(1)), {
      jsonrpc: "2.0",
      id: 1,
      error: {
        code: -32003,
        message: "Authorization is temporarily unavailable; the request was not executed.",
        data: { reasons: ["pdp_unavailable"] },
      },
    });
    assert.deepEqual(
      errors.map((e) => e.message),
      ["PDP down"],
    );
    // A list that answers no pending request fails closed the same way; without an id, to null.
    assert.deepEqual(await rewrite(listResponse("other")), {
      jsonrpc: "2.0",
      id: "other",
      error: {
        code: -32003,
        message: "Authorization is temporarily unavailable; the request was not executed.",
        data: { reasons: ["pdp_unavailable"] },
      },
    });
    const noId = (await rewrite({ jsonrpc: "2.0", result: { tools } })) as Record<string, unknown>;
    assert.equal(noId.id, null);
    assert.deepEqual(Object.keys(noId), ["jsonrpc", "id", "error"]);
  });
});

describe("rewriteJsonBody", () => {
  test("a single response", async () => {
    const body = await rewriteJsonBody(JSON.stringify(listResponse(1)), readOnly);
    assert.deepEqual(JSON.parse(body), filteredResponse(1, [tools[0]]));
  });

  test("a batch: only the tools/list answer changes", async () => {
    const other = { jsonrpc: "2.0", id: 7, result: { content: [] } };
    const body = await rewriteJsonBody(JSON.stringify([other, listResponse(1)]), readOnly);
    assert.deepEqual(JSON.parse(body), [other, filteredResponse(1, [tools[0]])]);
  });

  test("nothing to change, or not JSON: the very same text", async () => {
    const untouched = ` ${JSON.stringify([{ jsonrpc: "2.0", id: 3, result: { content: [] } }])} `;
    assert.equal(await rewriteJsonBody(untouched, readOnly), untouched);
    assert.equal(await rewriteJsonBody("{not json", readOnly), "{not json");
  });
});

/** The SSE event the SDK writes for a message. */
function sdkEvent(message: unknown, id?: string): string {
  return `${id === undefined ? "" : `id: ${id}\n`}event: message\ndata: ${JSON.stringify(message)}\n\n`;
}

/** One piece per character (the streams here are ASCII). */
function characters(text: string): string[] {
  return Array.from({ length: text.length }, (_, index) => text.charAt(index));
}

async function rewriteSse(pieces: string[], rewrite: MessageRewriter = readOnly): Promise<string> {
  const sse = new SseRewriter(rewrite);
  let output = "";
  for (const piece of pieces) output += await sse.push(piece);
  return output + (await sse.end());
}

describe("SseRewriter", () => {
  const progress = { jsonrpc: "2.0", method: "notifications/progress", params: { progress: 1 } };
  const stream = `: keep-alive\n\nid: p1\nretry: 500\ndata: \n\n${sdkEvent(progress)}${sdkEvent(listResponse(1), "e7")}`;
  const expected = `: keep-alive\n\nid: p1\nretry: 500\ndata: \n\n${sdkEvent(progress)}${sdkEvent(filteredResponse(1, [tools[0]]), "e7")}`;

  test("rewrites the tools/list event in place, keeping id and event, and passes the rest", async () => {
    assert.equal(await rewriteSse([stream]), expected);
  });

  test("the same output however the stream is cut (every split point, byte-sized pieces)", async () => {
    for (let cut = 0; cut <= stream.length; cut += 1) {
      assert.equal(
        await rewriteSse([stream.slice(0, cut), stream.slice(cut)]),
        expected,
        `cut ${cut}`,
      );
    }
    assert.equal(await rewriteSse(characters(stream)), expected);
  });

  test("CRLF and CR line ends are read (and written as LF)", async () => {
    for (const eol of ["\r\n", "\r"]) {
      const text = stream.replaceAll("\n", eol);
      assert.equal(await rewriteSse([text]), expected, JSON.stringify(eol));
      assert.equal(
        await rewriteSse(characters(text)),
        expected,
        `${JSON.stringify(eol)} in pieces`,
      );
    }
  });

  test("data split over several lines is one message", async () => {
    const json = JSON.stringify(listResponse(1), null, 1);
    const event = `event: message\n${json
      .split("\n")
      .map((line) => `data:${line}`)
      .join("\n")}\n\n`;
    assert.equal(await rewriteSse([event]), sdkEvent(filteredResponse(1, [tools[0]])));
  });

  test("an event left without its blank line at the end of the stream is still filtered", async () => {
    const event = sdkEvent(listResponse(1)).trimEnd();
    assert.equal(await rewriteSse([event]), sdkEvent(filteredResponse(1, [tools[0]])));
  });

  test("a batch in one event's data is filtered message by message", async () => {
    const other = { jsonrpc: "2.0", id: 7, result: { content: [] } };
    assert.equal(
      await rewriteSse([sdkEvent([other, listResponse(5)], "b1")]),
      sdkEvent([other, filteredResponse(5, [tools[0]])], "b1"),
    );
    const untouched = sdkEvent([other, progress]);
    assert.equal(await rewriteSse([untouched]), untouched);
  });

  test("data that is not JSON passes unchanged", async () => {
    assert.equal(await rewriteSse(["data: {oops\n\n"]), "data: {oops\n\n");
  });
});

// ------------------------------------------------------------ interception

type Writer = (res: ServerResponse, req: IncomingMessage) => Promise<void> | void;

let writer: Writer = () => undefined;
let rewriter: MessageRewriter = readOnly;
const interceptErrors: Error[] = [];
const server = createServer((req, res) => {
  interceptResponse(res, rewriter, (error) => interceptErrors.push(error));
  void writer(res, req);
});
let url = "";

before(async () => {
  await new Promise<void>((resolve) => {
    server.listen(0, "127.0.0.1", resolve);
  });
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
});

after(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => {
    server.close(() => {
      resolve();
    });
  });
});

const tick = () =>
  new Promise<void>((resolve) => {
    setImmediate(resolve);
  });

describe("interceptResponse on a real response", () => {
  test("JSON as @hono/node-server writes it: writeHead with Content-Length, write, end", async () => {
    const original = JSON.stringify(listResponse(1));
    writer = (res) => {
      res.writeHead(200, {
        "content-type": "application/json",
        "content-length": Buffer.byteLength(original),
        "x-extra": "kept",
      });
      res.flushHeaders(); // must not send the stale length early
      res.write(Buffer.from(original.slice(0, 10)));
      res.write(new TextEncoder().encode(original.slice(10)));
      res.end();
    };
    const response = await fetch(url);
    const text = await response.text();
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("x-extra"), "kept");
    assert.equal(response.headers.get("content-length"), String(Buffer.byteLength(text)));
    assert.deepEqual(JSON.parse(text), filteredResponse(1, [tools[0]]));
  });

  test("JSON as express's res.json writes it: setHeader, then end(body)", async () => {
    const callResult = { jsonrpc: "2.0", id: 2, result: { content: [] } };
    writer = (res) => {
      const body = JSON.stringify([listResponse(1), callResult]);
      res.setHeader("Content-Type", "application/json; charset=utf-8");
      res.setHeader("Content-Length", Buffer.byteLength(body));
      res.end(body, "utf8");
    };
    const response = await fetch(url);
    assert.deepEqual(await response.json(), [filteredResponse(1, [tools[0]]), callResult]);
  });

  test("SSE streams: headers and early events arrive before the stream ends", async () => {
    let release: () => void = () => undefined;
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    const progress = { jsonrpc: "2.0", method: "notifications/progress", params: {} };
    writer = async (res) => {
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
      res.flushHeaders();
      res.write(sdkEvent(progress));
      await released; // the client has seen the first event while the stream is open
      const list = sdkEvent(listResponse(1));
      res.write(list.slice(0, 25));
      await tick();
      res.write(list.slice(25));
      res.end();
    };
    const response = await fetch(url);
    assert.equal(response.headers.get("content-type"), "text/event-stream");
    const reader = (response.body as ReadableStream<Uint8Array> | null)?.getReader();
    assert.ok(reader !== undefined);
    const decoder = new TextDecoder();
    let text = "";
    while (!text.includes("\n\n")) {
      const { value, done } = await reader.read();
      assert.equal(done, false);
      text += decoder.decode(value, { stream: true });
    }
    assert.equal(text, sdkEvent(progress));
    release();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
    assert.equal(text, sdkEvent(progress) + sdkEvent(filteredResponse(1, [tools[0]])));
  });

  test("other statuses and content types pass through untouched", async () => {
    const body = JSON.stringify(listResponse(1));
    for (const [status, type] of [
      [202, "application/json"],
      [400, "application/json"],
      [200, "text/plain"],
    ] as const) {
      writer = (res) => {
        res.writeHead(status, { "content-type": type, "content-length": Buffer.byteLength(body) });
        res.end(body);
      };
      const response = await fetch(url);
      assert.equal(response.status, status);
      assert.equal(await response.text(), body, `${status} ${type}`);
    }
  });

  test("a rewriting failure destroys the response: nothing unfiltered reaches the client", async () => {
    rewriter = () => Promise.reject(new Error("boom"));
    try {
      writer = (res) => {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify(listResponse(1)));
      };
      await assert.rejects(async () => {
        const response = await fetch(url);
        await response.text();
      });
      assert.deepEqual(
        interceptErrors.map((e) => e.message),
        ["boom"],
      );
    } finally {
      rewriter = readOnly;
    }
  });
});
