/**
 * The premise of `servers.<name>.speaks_mcp_2026_07_28`: forward-auth decides
 * a request that declares 2026-07-28 from its headers alone, which is safe
 * only because a server speaking that revision refuses every body that says
 * something else. Each row is an attack on that premise, a request whose
 * headers name a harmless call and whose body is another; it is sent to the
 * official v2 SDK server (@modelcontextprotocol/server, in process, both of
 * its legacy postures), which must refuse it with nothing run, and read by
 * the PDP's reader with the body visible, which must refuse it too.
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { createMcpHandler, McpServer } from "@modelcontextprotocol/server";
import * as z from "zod";
import { McpRefusal, readMcpRequest } from "../../../src/protocol/mcp/request-reader.ts";

type Json = Record<string, unknown>;

const ran: string[] = [];

function serverFactory(): McpServer {
  const server = new McpServer({ name: "premise", version: "1.0.0" });
  for (const name of ["read_file", "delete_repo"]) {
    server.registerTool(name, { description: name, inputSchema: z.object({}) }, () => {
      ran.push(name);
      return Promise.resolve({ content: [{ type: "text" as const, text: name }] });
    });
  }
  return server;
}

const modernMeta = {
  "io.modelcontextprotocol/protocolVersion": "2026-07-28",
  "io.modelcontextprotocol/clientCapabilities": {},
};
const call = (name: string, meta: Json | undefined): Json => ({
  jsonrpc: "2.0",
  id: 1,
  method: "tools/call",
  params: { name, arguments: {}, ...(meta === undefined ? {} : { _meta: meta }) },
});
/** What a client declaring 2026-07-28 sends for a read of read_file: all a headers-only proxy shows. */
const readHeaders = {
  "mcp-protocol-version": "2026-07-28",
  "mcp-method": "tools/call",
  "mcp-name": "read_file",
};

const attacks: { note: string; headers: Record<string, string>; body: unknown }[] = [
  {
    note: "the body calls another tool",
    headers: readHeaders,
    body: call("delete_repo", modernMeta),
  },
  {
    note: "a legacy body (no _meta revision) under the 2026-07-28 header",
    headers: readHeaders,
    body: call("delete_repo", undefined),
  },
  {
    note: "_meta names 2025-11-25 under the 2026-07-28 header",
    headers: readHeaders,
    body: call("delete_repo", {
      ...modernMeta,
      "io.modelcontextprotocol/protocolVersion": "2025-11-25",
    }),
  },
  {
    note: "a legacy batch under the 2026-07-28 header",
    headers: readHeaders,
    body: [call("delete_repo", undefined)],
  },
  { note: "a 2026-07-28 batch", headers: readHeaders, body: [call("delete_repo", modernMeta)] },
  {
    note: "Mcp-Name in the base64 form of another tool",
    headers: {
      ...readHeaders,
      "mcp-name": `=?base64?${Buffer.from("read_file").toString("base64")}?=`,
    },
    body: call("delete_repo", modernMeta),
  },
  {
    note: "two Mcp-Name values folded into one",
    headers: { ...readHeaders, "mcp-name": "read_file, delete_repo" },
    body: call("delete_repo", modernMeta),
  },
];

const handlers = {
  stateless: createMcpHandler(serverFactory, { legacy: "stateless" }),
  reject: createMcpHandler(serverFactory, { legacy: "reject" }),
};

after(async () => {
  for (const handler of Object.values(handlers)) await handler.close();
});

async function serve(
  handler: (typeof handlers)["reject"],
  headers: Record<string, string>,
  body: unknown,
): Promise<{ status: number; text: string }> {
  const response = await handler.fetch(
    new Request("http://127.0.0.1/mcp", {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
        ...headers,
      },
      body: JSON.stringify(body),
    }),
  );
  return { status: response.status, text: await response.text() };
}

function pdpReads(headers: Record<string, string>, body: unknown): unknown {
  return readMcpRequest(
    {
      method: "POST",
      mcpMethod: headers["mcp-method"],
      mcpName: headers["mcp-name"],
      protocolVersion: headers["mcp-protocol-version"],
      body: { bytes: Buffer.from(JSON.stringify(body)), limits: { maxBytes: 65536, maxDepth: 16 } },
    },
    { batch: "authorize_each" },
  );
}

for (const [posture, handler] of Object.entries(handlers)) {
  describe(`the official v2 server (legacy: ${posture}) refuses what the headers do not say`, () => {
    test("control: headers that agree with the body run the call", async () => {
      ran.length = 0;
      const answer = await serve(handler, readHeaders, call("read_file", modernMeta));
      assert.equal(answer.status, 200, answer.text);
      assert.deepEqual(ran, ["read_file"]);
    });
    for (const attack of attacks) {
      test(`${attack.note}: 400, nothing runs; the PDP's reader refuses it too`, async () => {
        ran.length = 0;
        const answer = await serve(handler, attack.headers, attack.body);
        assert.equal(answer.status, 400, answer.text);
        assert.deepEqual(ran, []);
        assert.throws(
          () => pdpReads(attack.headers, attack.body),
          (error: unknown) => error instanceof McpRefusal,
        );
      });
    }
  });
}
