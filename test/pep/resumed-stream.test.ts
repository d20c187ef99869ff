/**
 * A stateful MCP server with an event store (resumable streams) behind the
 * PEP: a `tools/list` result replayed on a `GET` that resumes a stream
 * (`Last-Event-ID`) is filtered for whoever resumes it, exactly as the POST's
 * answer is, or refused (-32003) when the list cannot be decided. Every
 * component is real: the PDP in-process on 127.0.0.1 with the example
 * operator data, the official SDK servers (1.x StreamableHTTPServerTransport,
 * v2 WebStandardStreamableHTTPServerTransport, each with an event store),
 * the official 1.x and v2 clients through their resumption-token API, and
 * raw fetch requests where an attacker would choose the headers.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import {
  Client as ClientV2,
  StreamableHTTPClientTransport as StreamableHTTPClientTransportV2,
} from "@modelcontextprotocol/client";
import { createMcpAuthorization } from "../../src/pep/index.ts";
import { writePdpConfigForPep } from "./pdp-config-for-pep.ts";
import { JwksServer } from "../support/jwks-server.ts";
import { scratchDir } from "../support/opa.ts";
import { startPdp, type RunningPdp } from "../support/pdp.ts";
import { generateTestKey, mint, type TestKey } from "../support/tokens.ts";
import {
  annotationsOf,
  proxyContext,
  startMcpServer,
  toolNames,
  type RunningMcpServer,
  type SdkEra,
} from "./mcp-fixture.ts";

const operatorData = fileURLToPath(new URL("../../examples/operator-data.yaml", import.meta.url));
/** Inside the example data's destructive hours (07–19 UTC). */
const nowMs = Date.UTC(2025, 10, 26, 10, 0, 0);
const nowS = nowMs / 1000;
const issuer = "https://idp.pep.test";
const apiKey = randomBytes(24).toString("base64url");
/** The revision whose streams the SDKs make resumable (priming events). */
const protocolVersion = "2025-11-25";

let key: TestKey;
let jwks: JwksServer;
let mcp: RunningMcpServer;
let pdp: RunningPdp;
let resource: string;
const scratch = scratchDir();
const pepErrors: Error[] = [];
/** While true, the PEP of `/mcp-lists-down` cannot get a tools/list decided (the rest is decided). */
let listDecisionsDown = false;

/** The real fetch, failing only the list decisions (default action tools/call) while they are down. */
const listsDownFetch: typeof fetch = (input, init) => {
  const body =
    typeof init?.body === "string" ? (JSON.parse(init.body) as Record<string, unknown>) : {};
  const action = body.action as { name?: unknown } | undefined;
  if (listDecisionsDown && action?.name === "tools/call") {
    return Promise.reject(new Error("PDP unreachable (test)"));
  }
  return fetch(input, init);
};

const paths: Record<SdkEra, string> = { "1.x": "/mcp-resumable", v2: "/mcp-resumable/v2" };

before(async () => {
  key = await generateTestKey("ES256");
  jwks = await JwksServer.start([key.publicJwk]);
  mcp = await startMcpServer();
  resource = `${mcp.origin}/mcp`;
  const configFile = writePdpConfigForPep(scratch.dir, {
    issuer,
    jwksUrl: jwks.url,
    servers: { files: resource },
    apiKey,
  });
  pdp = await startPdp({
    env: { PDP_CONFIG: configFile, PDP_DATA: operatorData },
    clock: () => nowMs,
  });
  const common = {
    server: "files",
    apiKey,
    pdpUrl: pdp.url,
    resourceMetadataUrl: `${mcp.origin}/.well-known/oauth-protected-resource/mcp`,
    context: proxyContext,
    toolAnnotations: annotationsOf,
    onError: (error: Error) => {
      pepErrors.push(error);
    },
  };
  mcp.mount([
    { path: paths["1.x"], json: false, resumable: true, pep: createMcpAuthorization(common) },
    {
      path: paths.v2,
      json: false,
      resumable: true,
      era: "v2",
      pep: createMcpAuthorization(common),
    },
    {
      path: "/mcp-lists-down",
      json: false,
      resumable: true,
      pep: createMcpAuthorization({ ...common, fetch: listsDownFetch }),
    },
  ]);
});

after(async () => {
  await Promise.all([mcp.close(), pdp.close(), jwks.close()]);
  scratch.remove();
});

function token(scope: string, extra: Record<string, unknown> = {}): Promise<string> {
  return mint(key, {
    iss: issuer,
    sub: "alice",
    aud: resource,
    client_id: "pep-resume",
    iat: nowS - 60,
    exp: nowS + 3600,
    auth_time: nowS - 300,
    acr: "pwd",
    scope,
    ...extra,
  });
}

/** A reader on an unmanaged device: may call read_file and search_code only. */
const reader = () => token("mcp:read");
/** A fresh MFA admin on a compliant device: may call every tool. */
const admin = () => token("mcp:read mcp:write mcp:admin", { acr: "mfa" });
const readerSees = ["read_file", "search_code"];
const readerWhere = { "x-device-trust": "unmanaged", "x-client-ip": "10.1.2.3" };
const adminWhere = { "x-device-trust": "compliant", "x-client-ip": "10.1.2.3" };

// ----------------------------------------------------------------- raw HTTP

interface SseEvent {
  id: string | undefined;
  data: string;
}

type Json = Record<string, unknown>;

/**
 * Reads SSE events from `response` until `done` says so (or the stream ends),
 * within `timeoutMs`; then lets the stream go (a resumed GET stays open).
 */
async function readEvents(
  response: Response,
  done: (events: SseEvent[]) => boolean,
  timeoutMs = 5000,
): Promise<SseEvent[]> {
  assert.equal(response.headers.get("content-type")?.split(";")[0], "text/event-stream");
  const reader = (response.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  const events: SseEvent[] = [];
  let text = "";
  const timer = setTimeout(() => void reader.cancel(new Error("timeout")), timeoutMs);
  try {
    while (!done(events)) {
      const { value, done: ended } = await reader.read();
      if (ended) break;
      text += decoder.decode(value, { stream: true });
      for (let end = text.indexOf("\n\n"); end !== -1; end = text.indexOf("\n\n")) {
        const lines = text.slice(0, end).split("\n");
        text = text.slice(end + 2);
        const id = lines
          .find((line) => line.startsWith("id:"))
          ?.slice(3)
          .trim();
        const data = lines
          .filter((line) => line.startsWith("data:"))
          .map((line) => line.slice(5).trimStart())
          .join("\n");
        events.push({ id, data });
      }
    }
  } finally {
    clearTimeout(timer);
    await reader.cancel().catch(() => undefined);
  }
  return events;
}

function messagesOf(events: SseEvent[]): Json[] {
  return events.filter((event) => event.data !== "").map((event) => JSON.parse(event.data) as Json);
}

const answered = (id: number) => (events: SseEvent[]) =>
  messagesOf(events).some((message) => message.id === id);

interface RawSession {
  path: string;
  sessionId: string;
}

function headers(bearer: string, where: Record<string, string>, session?: RawSession) {
  return {
    authorization: `Bearer ${bearer}`,
    accept: "application/json, text/event-stream",
    "content-type": "application/json",
    "mcp-protocol-version": protocolVersion,
    ...where,
    ...(session === undefined ? {} : { "mcp-session-id": session.sessionId }),
  };
}

async function post(
  session: RawSession,
  bearer: string,
  where: Record<string, string>,
  body: Json,
) {
  return fetch(`${mcp.origin}${session.path}`, {
    method: "POST",
    headers: headers(bearer, where, session),
    body: JSON.stringify(body),
  });
}

/** initialize + notifications/initialized, as the caller given. */
async function openSession(path: string, bearer: string, where: Record<string, string>) {
  const response = await fetch(`${mcp.origin}${path}`, {
    method: "POST",
    headers: headers(bearer, where),
    body: JSON.stringify({
      jsonrpc: "2.0",
      id: 1,
      method: "initialize",
      params: { protocolVersion, capabilities: {}, clientInfo: { name: "raw", version: "1" } },
    }),
  });
  assert.equal(response.status, 200, await response.clone().text());
  const sessionId = response.headers.get("mcp-session-id");
  assert.ok(sessionId !== null, "a stateful server opened a session");
  await readEvents(response, answered(1));
  const session = { path, sessionId };
  const initialized = await post(session, bearer, where, {
    jsonrpc: "2.0",
    method: "notifications/initialized",
  });
  assert.equal(initialized.status, 202);
  return session;
}

/** A tools/list POST read to its answer: the list as delivered, and the stream's first event id. */
async function listOverPost(
  session: RawSession,
  bearer: string,
  where: Record<string, string>,
  id: number,
) {
  const response = await post(session, bearer, where, { jsonrpc: "2.0", id, method: "tools/list" });
  assert.equal(response.status, 200);
  const events = await readEvents(response, answered(id));
  const first = events[0]?.id;
  assert.ok(first !== undefined, "the SDK primed the stream with an event id (resumable)");
  const answer = messagesOf(events).find((message) => message.id === id);
  assert.ok(answer !== undefined);
  return { first, answer };
}

/** Resumes a stream after `lastEventId`: a GET, headers chosen by the caller. */
async function resume(
  session: RawSession,
  bearer: string,
  where: Record<string, string>,
  lastEventId: string,
  id: number,
): Promise<{ status: number; messages: Json[] }> {
  const response = await fetch(`${mcp.origin}${session.path}`, {
    headers: {
      ...headers(bearer, where, session),
      accept: "text/event-stream",
      "last-event-id": lastEventId,
    },
  });
  if (response.status !== 200) return { status: response.status, messages: [] };
  return { status: 200, messages: messagesOf(await readEvents(response, answered(id))) };
}

function toolsOf(message: Json | undefined): string[] {
  const result = message?.result as { tools?: { name: string }[] } | undefined;
  assert.ok(result?.tools !== undefined, `a tools/list result: ${JSON.stringify(message)}`);
  return result.tools.map((tool) => tool.name).sort();
}

for (const era of ["1.x", "v2"] as const) {
  describe(`SDK ${era} server with an event store, raw GET + Last-Event-ID`, () => {
    test("the caller's own list replayed on the resumed stream is filtered as the POST's was", async () => {
      const bearer = await reader();
      const session = await openSession(paths[era], bearer, readerWhere);
      const listed = await listOverPost(session, bearer, readerWhere, 2);
      assert.deepEqual(toolsOf(listed.answer), readerSees);
      const decisionsBefore = pdp.decisions.length;
      const replay = await resume(session, bearer, readerWhere, listed.first, 2);
      assert.equal(replay.status, 200);
      const replayed = replay.messages.find((message) => message.id === 2);
      assert.deepEqual(toolsOf(replayed), readerSees);
      assert.equal((replayed?.result as Json).cacheScope, "private");
      // The GET itself (mcp/stream), then the replayed list's tools in one more call.
      const actions = pdp.decisions.slice(decisionsBefore).map((decision) => decision.action);
      assert.ok(actions.includes("mcp/stream"), JSON.stringify(actions));
      assert.ok(actions.includes("tools/call"), JSON.stringify(actions));
    });

    test("an admin's list replayed to a reader who resumes the admin's stream: the reader's list", async () => {
      // The attacker holds a session id and an event id (the Last-Event-ID is the client's to
      // choose) of a stream that carried someone else's tools/list answer.
      const adminToken = await admin();
      const session = await openSession(paths[era], adminToken, adminWhere);
      const listed = await listOverPost(session, adminToken, adminWhere, 7);
      assert.deepEqual(toolsOf(listed.answer), [...toolNames].sort());
      const stolen = await resume(session, await reader(), readerWhere, listed.first, 7);
      assert.equal(stolen.status, 200);
      assert.deepEqual(toolsOf(stolen.messages.find((message) => message.id === 7)), readerSees);
      // The admin resuming the same stream still sees everything: decided per caller, not emptied.
      const own = await resume(session, adminToken, adminWhere, listed.first, 7);
      assert.deepEqual(
        toolsOf(own.messages.find((message) => message.id === 7)),
        [...toolNames].sort(),
      );
    });
  });
}

describe("the PDP cannot decide a replayed list", () => {
  test("the replayed answer becomes -32003 pdp_unavailable; the GET itself was decided", async () => {
    const bearer = await admin();
    const session = await openSession("/mcp-lists-down", bearer, adminWhere);
    const listed = await listOverPost(session, bearer, adminWhere, 3);
    assert.deepEqual(toolsOf(listed.answer), [...toolNames].sort());
    const errorsBefore = pepErrors.length;
    const decisionsBefore = pdp.decisions.length;
    listDecisionsDown = true;
    let replay;
    try {
      replay = await resume(session, bearer, adminWhere, listed.first, 3);
    } finally {
      listDecisionsDown = false;
    }
    assert.equal(replay.status, 200);
    assert.deepEqual(
      pdp.decisions.slice(decisionsBefore).map((d) => [d.action, d.outcome]),
      [["mcp/stream", "allow"]],
    );
    assert.deepEqual(
      replay.messages.find((message) => message.id === 3),
      {
        jsonrpc: "2.0",
        id: 3,
        error: {
          code: -32003,
          message: "Authorization is temporarily unavailable; the request was not executed.",
          data: { reasons: ["pdp_unavailable"] },
        },
      },
    );
    assert.deepEqual(
      pepErrors.slice(errorsBefore).map((error) => error.message),
      ["the PDP is unreachable: PDP unreachable (test)"],
    );
  });
});

// ------------------------------------------------------------ official clients

describe("the official clients resume with a resumption token", () => {
  test("SDK 1.x: a reader's client resuming an admin's tools/list stream gets the reader's list", async () => {
    const url = new URL(paths["1.x"], mcp.origin);
    const adminTransport = new StreamableHTTPClientTransport(url, {
      requestInit: { headers: { authorization: `Bearer ${await admin()}`, ...adminWhere } },
    });
    const adminClient = new Client({ name: "pep-resume-admin", version: "1.0.0" });
    await adminClient.connect(adminTransport);
    try {
      const tokens: string[] = [];
      const full = await adminClient.listTools(undefined, {
        onresumptiontoken: (resumptionToken) => tokens.push(resumptionToken),
      });
      assert.deepEqual(full.tools.map((tool) => tool.name).sort(), [...toolNames].sort());
      assert.ok(tokens.length > 0, "the stream gave resumption tokens");
      const sessionId = adminTransport.sessionId;
      assert.ok(sessionId !== undefined);

      // A client of the same session (connect skips initialize) resuming from the first token.
      const readerTransport = new StreamableHTTPClientTransport(url, {
        sessionId,
        requestInit: { headers: { authorization: `Bearer ${await reader()}`, ...readerWhere } },
      });
      const readerClient = new Client({ name: "pep-resume-reader", version: "1.0.0" });
      await readerClient.connect(readerTransport);
      try {
        const replayed = await readerClient.listTools(undefined, {
          resumptionToken: tokens[0],
          timeout: 5000,
        });
        assert.deepEqual(replayed.tools.map((tool) => tool.name).sort(), readerSees);
      } finally {
        await readerTransport.close();
      }
    } finally {
      await adminClient.close();
    }
  });

  test("SDK v2 client on the v2 server: the same", async () => {
    const url = new URL(paths.v2, mcp.origin);
    const adminTransport = new StreamableHTTPClientTransportV2(url, {
      requestInit: { headers: { authorization: `Bearer ${await admin()}`, ...adminWhere } },
    });
    const adminClient = new ClientV2({ name: "pep-resume-admin", version: "1.0.0" });
    await adminClient.connect(adminTransport);
    try {
      const tokens: string[] = [];
      const full = await adminClient.listTools(undefined, {
        onresumptiontoken: (resumptionToken: string) => tokens.push(resumptionToken),
      });
      assert.deepEqual(full.tools.map((tool) => tool.name).sort(), [...toolNames].sort());
      assert.ok(tokens.length > 0, "the stream gave resumption tokens");
      const sessionId = adminTransport.sessionId;
      assert.ok(sessionId !== undefined);

      const readerTransport = new StreamableHTTPClientTransportV2(url, {
        sessionId,
        requestInit: { headers: { authorization: `Bearer ${await reader()}`, ...readerWhere } },
      });
      const readerClient = new ClientV2({ name: "pep-resume-reader", version: "1.0.0" });
      await readerClient.connect(readerTransport);
      try {
        // request, not listTools: a client that skipped initialize knows no server capabilities,
        // and the v2 listTools answers an empty list without asking such a server.
        const replayed = await readerClient.request(
          { method: "tools/list" },
          { resumptionToken: tokens[0], timeout: 5000 },
        );
        assert.deepEqual(replayed.tools.map((tool) => tool.name).sort(), readerSees);
      } finally {
        await readerTransport.close();
      }
    } finally {
      await adminClient.close();
    }
  });
});

test("no PEP failed closed except where a test made it", () => {
  assert.deepEqual(
    pepErrors.map((error) => error.message),
    ["the PDP is unreachable: PDP unreachable (test)"],
  );
});
