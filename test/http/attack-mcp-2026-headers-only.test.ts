/**
 * Attacks on deciding MCP 2026-07-28 requests from their headers alone
 * (`servers.<name>.speaks_mcp_2026_07_28` behind a headers-only proxy, NGINX
 * auth_request here). The premise is that the MCP server reads `Mcp-Name`
 * exactly as the PDP does and refuses a body that says something else. Each
 * attack sends the same request to the PDP (as NGINX relays it: the client's
 * headers, no body) and to the official v2 SDK server (in process, with the
 * body): the attack holds when the PDP allows what the server then runs.
 *
 * The BOM attack was a finding (a reader's delete_repo ran); its test states
 * the fixed behaviour.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { createMcpHandler, McpServer } from "@modelcontextprotocol/server";
import * as z from "zod";
import { JwksServer } from "../support/jwks-server.ts";
import { subrequestStatus } from "./nginx-subrequest.ts";
import { scratchDir } from "../support/opa.ts";
import { startPdp, type RunningPdp } from "../support/pdp.ts";
import { generateTestKey, mint } from "../support/tokens.ts";

const issuer = "https://idp.example.com";
const filesResource = "https://mcp.example.com/files";
const noonUtcMs = Date.UTC(2026, 2, 10, 12, 0, 0);
const nowS = noonUtcMs / 1000;

const scratch = scratchDir();
const closers: (() => Promise<void>)[] = [];
let pdp: RunningPdp;
let readerToken = "";

/**
 * A catalog an operator plausibly writes: every tool of `files` is a read,
 * except the deletes. The policy takes the highest class among matching
 * globs, so `delete_repo` is destructive and needs mcp:admin.
 */
const operatorData = {
  tools: { "files/*": "read", "files/delete_*": "destructive" },
};

before(async () => {
  const key = await generateTestKey("ES256");
  const jwks = await JwksServer.start([key.publicJwk]);
  closers.push(() => jwks.close());
  readerToken = await mint(key, {
    iss: issuer,
    sub: "alice",
    aud: filesResource,
    iat: nowS - 60,
    exp: nowS + 3600,
    auth_time: nowS - 300,
    scope: "mcp:read",
  });
  const config = join(scratch.dir, "pdp-config.json");
  writeFileSync(
    config,
    JSON.stringify({
      issuers: [{ issuer, jwks_uri: jwks.url, audiences: [filesResource] }],
      servers: { files: { resource: filesResource, speaks_mcp_2026_07_28: true } },
      forward_auth: {
        trusted_proxies: ["127.0.0.1/32"],
        context_headers: { "x-device-trust": "device.trust" },
      },
    }),
  );
  const data = join(scratch.dir, "operator-data.json");
  writeFileSync(data, JSON.stringify(operatorData));
  pdp = await startPdp({ env: { PDP_CONFIG: config, PDP_DATA: data }, clock: () => noonUtcMs });
  closers.push(() => pdp.close());
});

after(async () => {
  for (const close of closers.reverse()) await close();
  await handler.close();
  scratch.remove();
});

// ---------------------------------------------------------------- the two readers of one request

/** What the v2 server ran, in order. */
const ran: string[] = [];

const handler = createMcpHandler(
  () => {
    const server = new McpServer({ name: "files", version: "1.0.0" });
    for (const name of ["read_file", "delete_repo"]) {
      server.registerTool(name, { description: name, inputSchema: z.object({}) }, () => {
        ran.push(name);
        return Promise.resolve({ content: [{ type: "text" as const, text: name }] });
      });
    }
    return server;
  },
  { legacy: "reject" },
);

const modernMeta = {
  "io.modelcontextprotocol/protocolVersion": "2026-07-28",
  "io.modelcontextprotocol/clientCapabilities": {},
};

/** The 2026-07-28 headers a client sends for a tools/call, Mcp-Name as given. */
function callHeaders(mcpName: string): Record<string, string> {
  return {
    "mcp-protocol-version": "2026-07-28",
    "mcp-method": "tools/call",
    "mcp-name": mcpName,
  };
}

/** The official v2 server, given the headers and the body calling `tool`. */
async function serverRuns(headers: Record<string, string>, tool: string): Promise<string[]> {
  ran.length = 0;
  const response = await handler.fetch(
    new Request("http://127.0.0.1/mcp", {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
        ...headers,
      },
      body: JSON.stringify({
        jsonrpc: "2.0",
        id: 1,
        method: "tools/call",
        params: { name: tool, arguments: {}, _meta: modernMeta },
      }),
    }),
  );
  await response.text();
  return [...ran];
}

/** The PDP's status for NGINX's auth_request subrequest of the reader's call with `headers`. */
function pdpStatus(headers: Record<string, string>): Promise<number> {
  return subrequestStatus(pdp.url, readerToken, headers);
}

const base64Of = (bytes: Buffer) => `=?base64?${bytes.toString("base64")}?=`;
/** U+FEFF (the byte order mark) in UTF-8. */
const bom = Buffer.from([0xef, 0xbb, 0xbf]);

describe("attack: a byte order mark in a base64 Mcp-Name", () => {
  test("control: delete_repo named plainly is refused to a reader, and the server runs what it is named", async () => {
    assert.equal(await pdpStatus(callHeaders("delete_repo")), 403);
    assert.deepEqual(await serverRuns(callHeaders("delete_repo"), "delete_repo"), ["delete_repo"]);
  });

  test("control: delete_repo in the base64 form is refused to a reader too", async () => {
    const name = base64Of(Buffer.from("delete_repo"));
    assert.equal(await pdpStatus(callHeaders(name)), 403);
  });

  test("the v2 server strips a leading BOM from the decoded Mcp-Name: BOM+delete_repo matches a body calling delete_repo, which runs", async () => {
    const name = base64Of(Buffer.concat([bom, Buffer.from("delete_repo")]));
    assert.deepEqual(await serverRuns(callHeaders(name), "delete_repo"), ["delete_repo"]);
  });

  test("the PDP does not allow a reader the headers the v2 server runs as delete_repo (BOM+delete_repo in base64)", async () => {
    const name = base64Of(Buffer.concat([bom, Buffer.from("delete_repo")]));
    // Today the PDP keeps the BOM (TextDecoder ignoreBOM: true): it judges "\uFEFFdelete_repo",
    // which files/delete_* does not match and files/* classifies as a read: 200.
    const status = await pdpStatus(callHeaders(name));
    assert.notEqual(status, 200, "the PDP allowed a call the server runs as delete_repo");
  });
});
