import assert from "node:assert/strict";
import { test } from "node:test";
import {
  connectSession,
  postRpc,
  sdkHttpError,
  sdkSession,
  toolCall,
  type SdkSession,
} from "./client.js";
import type { E2eEnvironment } from "./environment.js";
import { filesResourceMetadata, type PersonaName } from "./identity.js";
import { tools } from "./mcp-server.js";

/** What a way of putting mcp-pdp in front of the MCP server lets it see. */
export interface ProxyPath {
  /** The proxy sends the JSON-RPC body to the PDP (njs, Traefik forwardBody). */
  seesBody: boolean;
  /** A deny reaches the client with the PDP's own body (not the proxy's). */
  relaysBody: boolean;
}

const metadata = `resource_metadata="${filesResourceMetadata}"`;
export const challenges = {
  noToken: `Bearer ${metadata}`,
  invalidToken: `Bearer error="invalid_token", ${metadata}`,
  needsAdmin: `Bearer error="insufficient_scope", scope="mcp:admin", ${metadata}`,
  freshSignIn: `Bearer error="insufficient_user_authentication", max_age=900, ${metadata}`,
};

const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Reason codes of a PDP deny body: JSON-RPC error data, or the plain error body. */
export function reasonsOf(body: string): string[] | undefined {
  try {
    const parsed = JSON.parse(body) as {
      reasons?: unknown;
      error?: { data?: { reasons?: unknown } };
    };
    const reasons = parsed.error?.data?.reasons ?? parsed.reasons;
    return Array.isArray(reasons) ? reasons.map(String) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The scenarios every proxy path must pass. `origin()` (the proxy's base URL)
 * and `env()` are read when the tests run: the components start in the
 * file's `before`. A path that cannot run fails; nothing is skipped.
 */
export function defineProxyScenarios(
  proxy: ProxyPath,
  origin: () => string,
  env: () => E2eEnvironment,
): void {
  const url = () => `${origin()}/mcp`;
  const token = (who: PersonaName) => env().identity.token(who);
  /** The SDK client as this path needs it: SEP-2243 headers where the proxy cannot see the body. */
  const session = async (
    who: PersonaName | undefined,
    device = "compliant",
    extraHeaders: Record<string, string> = {},
  ): Promise<SdkSession> =>
    connectSession(url(), {
      token: who === undefined ? undefined : await token(who),
      device,
      sep2243: !proxy.seesBody,
      extraHeaders,
    });

  /** Runs `action`; the MCP server must receive no request meanwhile. */
  const unreached = async <T>(action: () => Promise<T>): Promise<T> => {
    const before = env().mcp.requests.length;
    const result = await action();
    assert.deepEqual(
      env().mcp.requests.slice(before),
      [],
      "a denied request reached the MCP server",
    );
    return result;
  };

  /** A denied tools/call through the SDK client: its error, the wire exchange, nothing executed. */
  const deniedCall = async (
    mcpSession: SdkSession,
    tool: string,
    status: number,
    args: Record<string, unknown> = {},
  ) => {
    const executed = env().mcp.count(tool);
    const error = await unreached(() =>
      sdkHttpError(() => mcpSession.client.callTool({ name: tool, arguments: args })),
    );
    assert.equal(error.code, status, error.message);
    const exchange = mcpSession.last("tools/call");
    assert.ok(exchange, "the SDK sent the tools/call");
    assert.equal(exchange.status, status);
    assert.match(exchange.headers.get("x-pdp-decision-id") ?? "", uuid);
    assert.equal(env().mcp.count(tool), executed, `${tool} must not run`);
    return { error, exchange };
  };

  const readerTitle = proxy.seesBody
    ? "a reader reads a file through the official SDK client"
    : "a reader reads a file through the official SDK client sending SEP-2243 Mcp-Method/Mcp-Name";
  test(readerTitle, async () => {
    const reader = await session("reader");
    try {
      const listed = await reader.client.listTools();
      assert.deepEqual(listed.tools.map((t) => t.name).sort(), Object.values(tools).sort());
      const result = await reader.client.callTool({
        name: tools.read,
        arguments: { path: "README.md" },
      });
      assert.deepEqual(result.content, [{ type: "text", text: "read_file done" }]);
      const execution = env().mcp.last(tools.read);
      assert.equal(execution?.subject, "reader-1");
      assert.equal(execution.risk, "read");
      assert.match(execution.decisionId ?? "", uuid);
      if (!proxy.seesBody) {
        // What made it work: the method and tool name in headers (SEP-2243).
        assert.equal(reader.last("tools/call")?.requestHeaders.get("mcp-name"), tools.read);
      }
    } finally {
      await reader.close();
    }
  });

  test("the upstream's x-pdp-* headers come from the PDP, never from the client", async () => {
    const reader = await session("reader", "compliant", {
      "x-pdp-subject": "mallory",
      "x-pdp-risk": "none",
      "x-pdp-decision-id": "forged",
    });
    try {
      await reader.client.callTool({ name: tools.read, arguments: { path: "a" } });
      const execution = env().mcp.last(tools.read);
      assert.equal(execution?.subject, "reader-1");
      assert.equal(execution.risk, "read");
      assert.match(execution.decisionId ?? "", uuid);
    } finally {
      await reader.close();
    }
  });

  if (!proxy.seesBody) {
    test("the SDK 1.32.2 client sends no Mcp-Method: every POST is opaque, judged at the highest risk", async () => {
      // The reader is otherwise perfect (compliant device, MFA, fresh sign-in):
      // only the missing mcp:admin separates it from the destructive class.
      const reader = sdkSession(url(), { token: await token("reader"), device: "compliant" });
      try {
        const error = await unreached(() => sdkHttpError(() => reader.connect()));
        assert.equal(error.code, 403);
        const initialize = reader.last("initialize");
        assert.equal(initialize?.requestHeaders.get("mcp-method"), null, "SDK 1.32.2 sends none");
        assert.equal(initialize.headers.get("www-authenticate"), challenges.needsAdmin);
        // What the SDK's own parser reads: the step-up it would ask the user for.
        assert.equal(initialize.wwwAuthenticate.error, "insufficient_scope");
        assert.equal(initialize.wwwAuthenticate.scope, "mcp:admin");
        assert.equal(initialize.wwwAuthenticate.resourceMetadataUrl?.href, filesResourceMetadata);
      } finally {
        await reader.close();
      }
      // The same read as a raw tools/call: without headers denied, with them allowed.
      const headers = {
        authorization: `Bearer ${await token("reader")}`,
        "x-device-trust": "compliant",
      };
      const before = env().mcp.count(tools.read);
      const opaque = await unreached(() =>
        postRpc(url(), toolCall(tools.read, { path: "a" }), headers),
      );
      assert.equal(opaque.status, 403);
      assert.equal(opaque.headers.get("www-authenticate"), challenges.needsAdmin);
      const named = await postRpc(url(), toolCall(tools.read, { path: "a" }), {
        ...headers,
        "mcp-method": "tools/call",
        "mcp-name": tools.read,
      });
      assert.equal(named.status, 200, named.text);
      assert.equal(env().mcp.count(tools.read), before + 1);
      assert.equal(env().mcp.last(tools.read)?.risk, "read");
    });

    test("an admin's opaque calls pass at the highest class (the SDK client unchanged)", async () => {
      const admin = sdkSession(url(), { token: await token("admin"), device: "compliant" });
      try {
        await admin.connect();
        await admin.client.callTool({ name: tools.read, arguments: { path: "a" } });
        const execution = env().mcp.last(tools.read);
        assert.equal(execution?.subject, "admin-1");
        assert.equal(execution.risk, "destructive", "judged as the highest class, not as a read");
      } finally {
        await admin.close();
      }
    });
  }

  test("a destructive tool without mcp:admin: 403 insufficient_scope, scope mcp:admin", async () => {
    const writer = await session("writer");
    try {
      const { error, exchange } = await deniedCall(writer, tools.destructive, 403, { repo: "r" });
      assert.equal(exchange.headers.get("www-authenticate"), challenges.needsAdmin);
      assert.equal(exchange.wwwAuthenticate.error, "insufficient_scope");
      assert.equal(exchange.wwwAuthenticate.scope, "mcp:admin");
      if (proxy.relaysBody) {
        assert.deepEqual(reasonsOf(exchange.body), ["scope_missing"]);
        assert.match(error.message, /scope_missing/);
      }
      if (proxy.seesBody) {
        // A JSON-RPC request is answered with a JSON-RPC error for its id.
        const body = JSON.parse(exchange.body) as { jsonrpc?: string; error?: { code?: number } };
        assert.equal(body.jsonrpc, "2.0");
        assert.equal(body.error?.code, -32003);
      }
    } finally {
      await writer.close();
    }
  });

  test("an admin with a fresh MFA sign-in on a compliant device deletes", async () => {
    const admin = await session("admin");
    try {
      const before = env().mcp.count(tools.destructive);
      await admin.client.callTool({ name: tools.destructive, arguments: { repo: "r" } });
      assert.equal(env().mcp.count(tools.destructive), before + 1);
      const execution = env().mcp.last(tools.destructive);
      assert.equal(execution?.subject, "admin-1");
      assert.equal(execution.risk, "destructive");
    } finally {
      await admin.close();
    }
  });

  test("a write from an unmanaged device is denied (no step-up: signing in again would not help)", async () => {
    const unmanaged = await session("writer", "unmanaged");
    try {
      const { exchange } = await deniedCall(unmanaged, tools.write, 403, {
        path: "a",
        content: "b",
      });
      assert.equal(exchange.headers.get("www-authenticate"), null);
      if (proxy.relaysBody) assert.deepEqual(reasonsOf(exchange.body), ["device_untrusted"]);
    } finally {
      await unmanaged.close();
    }
    const managed = await session("writer", "managed");
    try {
      await managed.client.callTool({ name: tools.write, arguments: { path: "a", content: "b" } });
      assert.equal(env().mcp.last(tools.write)?.risk, "write");
    } finally {
      await managed.close();
    }
  });

  test("a destructive tool after a sign-in older than 900 s: step-up with max_age", async () => {
    const stale = await session("staleAdmin");
    try {
      const { exchange } = await deniedCall(stale, tools.destructive, 403, { repo: "r" });
      assert.equal(exchange.headers.get("www-authenticate"), challenges.freshSignIn);
      assert.equal(exchange.wwwAuthenticate.error, "insufficient_user_authentication");
      if (proxy.relaysBody) assert.deepEqual(reasonsOf(exchange.body), ["auth_too_old"]);
    } finally {
      await stale.close();
    }
  });

  test("unknown and lying tools are judged destructive: denied for a reader, never run", async () => {
    const reader = await session("reader");
    try {
      // Not in the catalog; its honest readOnlyHint never reaches the PDP through a proxy.
      const uncatalogued = await deniedCall(reader, tools.uncatalogued, 403, { repo: "r" });
      assert.equal(uncatalogued.exchange.headers.get("www-authenticate"), challenges.needsAdmin);
      // Not on the server at all.
      const missing = await deniedCall(reader, "format_disk", 403);
      assert.equal(missing.exchange.headers.get("www-authenticate"), challenges.needsAdmin);
      // readOnlyHint: true, but catalogued files/delete_*: the catalog wins.
      const lying = await deniedCall(reader, tools.lying, 403);
      assert.equal(lying.exchange.headers.get("www-authenticate"), challenges.needsAdmin);
    } finally {
      await reader.close();
    }
  });

  test("no token: 401 with the resource metadata URL (RFC 9728)", async () => {
    const anonymous = sdkSession(url(), { device: "compliant" });
    try {
      const error = await unreached(() => sdkHttpError(() => anonymous.connect()));
      assert.equal(error.code, 401);
      const initialize = anonymous.last("initialize");
      assert.equal(initialize?.headers.get("www-authenticate"), challenges.noToken);
      assert.equal(initialize.wwwAuthenticate.resourceMetadataUrl?.href, filesResourceMetadata);
      if (proxy.relaysBody) assert.deepEqual(reasonsOf(initialize.body), ["token_missing"]);
    } finally {
      await anonymous.close();
    }
  });

  test("a token for another audience: 401 invalid_token", async () => {
    const other = sdkSession(url(), { token: await token("otherAudience"), device: "compliant" });
    try {
      const error = await unreached(() => sdkHttpError(() => other.connect()));
      assert.equal(error.code, 401);
      const initialize = other.last("initialize");
      assert.equal(initialize?.headers.get("www-authenticate"), challenges.invalidToken);
      assert.equal(initialize.wwwAuthenticate.error, "invalid_token");
      if (proxy.relaysBody) {
        assert.deepEqual(reasonsOf(initialize.body), ["token_wrong_audience"]);
      }
    } finally {
      await other.close();
    }
  });

  test("a JSON-RPC batch hiding a forbidden call is denied; neither call runs", async () => {
    const batch = [toolCall(tools.read, { path: "a" }), toolCall(tools.destructive, { repo: "r" })];
    const before = { read: env().mcp.count(tools.read), del: env().mcp.count(tools.destructive) };
    const headers = {
      authorization: `Bearer ${await token("reader")}`,
      "x-device-trust": "compliant",
    };
    const reply = await unreached(() => postRpc(url(), batch, headers));
    if (proxy.seesBody) {
      // Batches are rejected outright (forward_auth.batch: reject, the default).
      assert.equal(reply.status, 400, reply.text);
      assert.deepEqual(reasonsOf(reply.text), ["mcp_batch_rejected"]);
    } else {
      // Unseen, the batch is an opaque POST: the highest class.
      assert.equal(reply.status, 403, reply.text);
      assert.equal(reply.headers.get("www-authenticate"), challenges.needsAdmin);
    }
    assert.deepEqual(
      { read: env().mcp.count(tools.read), del: env().mcp.count(tools.destructive) },
      before,
    );
  });

  if (proxy.seesBody) {
    test("a batch is rejected even for an admin: the PDP cannot answer it per call", async () => {
      const reply = await unreached(async () =>
        postRpc(url(), [toolCall(tools.read, { path: "a" })], {
          authorization: `Bearer ${await token("admin")}`,
          "x-device-trust": "compliant",
        }),
      );
      assert.equal(reply.status, 400, reply.text);
      assert.deepEqual(reasonsOf(reply.text), ["mcp_batch_rejected"]);
    });

    test("Mcp-Name that disagrees with the body: 400 mcp_header_mismatch, nothing runs", async () => {
      const reply = await unreached(async () =>
        postRpc(url(), toolCall(tools.destructive, { repo: "r" }), {
          authorization: `Bearer ${await token("reader")}`,
          "x-device-trust": "compliant",
          "mcp-method": "tools/call",
          "mcp-name": tools.read,
        }),
      );
      assert.equal(reply.status, 400, reply.text);
      assert.deepEqual(reasonsOf(reply.text), ["mcp_header_mismatch"]);
    });
  } else {
    test("KNOWN LIMIT: a lying Mcp-Name passes a headers-only proxy; only an SEP-2243 server stops it", async () => {
      const lie = {
        authorization: `Bearer ${await token("reader")}`,
        "x-device-trust": "compliant",
        "mcp-method": "tools/call",
        "mcp-name": tools.read,
      };
      // The PDP sees a read of read_file (all it can see) and allows it; the SDK
      // 1.32.2 server does not compare headers with the body and runs delete_repo.
      const before = env().mcp.count(tools.destructive);
      const unchecked = await postRpc(url(), toolCall(tools.destructive, { repo: "r" }), lie);
      assert.equal(unchecked.status, 200, unchecked.text);
      assert.equal(env().mcp.count(tools.destructive), before + 1);
      const execution = env().mcp.last(tools.destructive);
      assert.equal(execution?.subject, "reader-1");
      assert.equal(execution.risk, "read", "the PDP approved what the headers named");
      // A server that checks the headers against the body (SEP-2243) refuses.
      const checked = await postRpc(
        `${origin()}/mcp-sep2243`,
        toolCall(tools.destructive, { repo: "r" }),
        lie,
      );
      assert.equal(checked.status, 400, checked.text);
      assert.equal(env().mcp.count(tools.destructive), before + 1);
    });

    test("without the body, batch: reject cannot hold: an admin's batch passes as one opaque POST", async () => {
      const before = env().mcp.count(tools.read);
      const reply = await postRpc(url(), [toolCall(tools.read, { path: "a" })], {
        authorization: `Bearer ${await token("admin")}`,
        "x-device-trust": "compliant",
      });
      assert.equal(reply.status, 200, reply.text);
      assert.equal(env().mcp.count(tools.read), before + 1);
      assert.equal(env().mcp.last(tools.read)?.risk, "destructive");
    });
  }

  test("a client cannot choose the method the PDP sees (X-Forwarded-Method)", async () => {
    // Believed, it would turn this POST into a GET (mcp/stream, a read).
    const reply = await unreached(async () =>
      postRpc(url(), toolCall(tools.destructive, { repo: "r" }), {
        authorization: `Bearer ${await token("reader")}`,
        "x-device-trust": "compliant",
        "x-forwarded-method": "GET",
        "x-forwarded-uri": "/mcp",
      }),
    );
    assert.equal(reply.status, 403, reply.text);
    assert.equal(reply.headers.get("www-authenticate"), challenges.needsAdmin);
  });

  test("a client's X-Original-Method is overwritten or refused, never believed", async () => {
    const reply = await unreached(async () =>
      postRpc(url(), toolCall(tools.destructive, { repo: "r" }), {
        authorization: `Bearer ${await token("reader")}`,
        "x-device-trust": "compliant",
        "x-original-method": "GET",
        "x-original-uri": "/mcp",
      }),
    );
    if (reply.status === 400) {
      // Caddy and Traefik set X-Forwarded-Method but pass X-Original-Method through:
      // the PDP refuses the disagreement.
      assert.match(reply.text, /"code":"mcp_invalid".*disagree/);
    } else {
      // The NGINX configurations set both headers themselves.
      assert.equal(reply.status, 403, reply.text);
      assert.equal(reply.headers.get("www-authenticate"), challenges.needsAdmin);
    }
  });

  test("a client cannot choose its address (X-Forwarded-For is the proxy's)", async () => {
    // Writes are allowed from 127.0.0.0/8 only (the e2e data): were the client's
    // 10.9.9.9 believed, this write would be denied with network_denied.
    const writer = await session("writer", "managed", { "x-forwarded-for": "10.9.9.9" });
    try {
      const before = env().mcp.count(tools.write);
      await writer.client.callTool({ name: tools.write, arguments: { path: "a", content: "b" } });
      assert.equal(env().mcp.count(tools.write), before + 1);
    } finally {
      await writer.close();
    }
  });
}
