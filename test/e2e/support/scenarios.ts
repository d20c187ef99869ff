import assert from "node:assert/strict";
import { test } from "node:test";
import {
  connectSession,
  eraRevision,
  postRpc,
  sdkHttpError,
  sdkSession,
  toolCall,
  type SdkEra,
  type SdkSession,
} from "./client.ts";
import type { E2eEnvironment } from "./environment.ts";
import type { PersonaName } from "./identity.ts";
import { tools } from "./mcp-server.ts";
import { resourceMetadataOf, resourceOf, sites, type SiteName } from "./sites.ts";

/** What a way of putting mcp-pdp in front of the MCP server lets it see. */
export interface ProxyPath {
  /** The proxy sends the JSON-RPC body to the PDP (njs, Traefik forwardBody). */
  seesBody: boolean;
  /** A deny reaches the client with the PDP's own body (not the proxy's). */
  relaysBody: boolean;
}

/** The WWW-Authenticate values the PDP answers with for a registered server. */
export function challengesFor(site: SiteName): {
  noToken: string;
  invalidToken: string;
  needsAdmin: string;
  freshSignIn: string;
} {
  const metadata = `resource_metadata="${resourceMetadataOf(site)}"`;
  return {
    noToken: `Bearer ${metadata}`,
    invalidToken: `Bearer error="invalid_token", ${metadata}`,
    needsAdmin: `Bearer error="insufficient_scope", scope="mcp:admin", ${metadata}`,
    freshSignIn: `Bearer error="insufficient_user_authentication", max_age=900, ${metadata}`,
  };
}

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
 * The scenarios every proxy path must pass, with `callers` configured on the
 * PDP (the proxy authenticates itself). `origins()` (the proxy's base URL per
 * e2e server) and `env()` are read when the tests run: the components start
 * in the file's `before`. A path that cannot run fails; nothing is skipped.
 *
 * Where the proxy shows the PDP the body, every tool-level scenario runs on
 * `files`, the README's server with safe defaults. Where it does not, `files`
 * sees only opaque POSTs (judged at the highest class: its Mcp-* headers are
 * not believed), so the tool-level scenarios run on `files-sep2243`, a server
 * that enforces SEP-2243's header check and is marked so
 * (`enforces_mcp_headers: true`): the only honest way to tell a read from a
 * delete without the body.
 */
export function defineProxyScenarios(
  proxy: ProxyPath,
  origins: () => Record<SiteName, string>,
  env: () => E2eEnvironment,
): void {
  /** Where tool-level decisions can be made on this path. */
  const named: SiteName = proxy.seesBody ? "files" : "sep2243";
  const url = (site: SiteName = named) => `${origins()[site]}/mcp`;
  const token = (who: PersonaName, site: SiteName = named) =>
    env().identity.token(who, resourceOf(site));
  const challenges = challengesFor(named);
  /**
   * The SDK client on `site`: SEP-2243 headers where the PDP believes them
   * (headers-only paths), added by a wrapper for 1.x and by the v2 client itself.
   */
  const session = async (
    who: PersonaName | undefined,
    device = "compliant",
    extraHeaders: Record<string, string> = {},
    era: SdkEra = "1.x",
  ): Promise<SdkSession> => {
    const connected = await connectSession(url(), {
      token: who === undefined ? undefined : await token(who),
      device,
      sep2243: era === "1.x" && !proxy.seesBody,
      extraHeaders,
      era,
    });
    assert.equal(connected.protocolVersion(), eraRevision[era]);
    return connected;
  };

  /**
   * Runs `action`; the MCP server must receive no POST meanwhile (the SDK
   * client's own GET of its SSE stream may arrive at any time after connecting).
   */
  const unreached = async <T>(action: () => Promise<T>): Promise<T> => {
    const posts = () => env().mcp.requests.filter((r) => r.method === "POST");
    const before = posts().length;
    const result = await action();
    assert.deepEqual(
      posts()
        .slice(before)
        .map((r) => `${r.path} ${r.methods.join(",")}`),
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

  /**
   * The scenarios both SDK eras share, once per era: the same proxy, PDP and
   * server (which speaks both), the client and the revision it negotiates
   * (2025-11-25 / 2026-07-28) differ.
   */
  for (const era of ["1.x", "v2"] as const) {
    defineEraScenarios(era);
  }

  function defineEraScenarios(era: SdkEra): void {
    const sdk = `SDK ${era} (MCP ${eraRevision[era]})`;
    const readerTitle = proxy.seesBody
      ? `${sdk}: a reader reads a file through the official SDK client`
      : `${sdk}: a reader reads a file through the official SDK client sending SEP-2243 Mcp-Method/Mcp-Name, on a server marked enforces_mcp_headers that checks them`;
    test(readerTitle, async () => {
      const reader = await session("reader", "compliant", {}, era);
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
        assert.equal(execution.upstream, sites[named].upstream);
        assert.match(execution.decisionId ?? "", uuid);
        if (!proxy.seesBody) {
          // What made it work: the method and tool name in headers (SEP-2243).
          assert.equal(reader.last("tools/call")?.requestHeaders.get("mcp-name"), tools.read);
        }
        if (era === "v2") {
          // The v2 client negotiated first (server/discover) and sends the headers unasked.
          assert.equal(reader.exchanges[0]?.methods[0], "server/discover");
          const call = reader.last("tools/call")?.requestHeaders;
          assert.equal(call?.get("mcp-protocol-version"), "2026-07-28");
          assert.equal(call.get("mcp-method"), "tools/call");
          assert.equal(call.get("mcp-name"), tools.read);
        }
      } finally {
        await reader.close();
      }
    });

    test(`${sdk}: a destructive tool without mcp:admin: 403 insufficient_scope, scope mcp:admin`, async () => {
      const writer = await session("writer", "compliant", {}, era);
      try {
        const { error, exchange } = await deniedCall(writer, tools.destructive, 403, { repo: "r" });
        assert.equal(exchange.headers.get("www-authenticate"), challenges.needsAdmin);
        assert.equal(exchange.wwwAuthenticate.error, "insufficient_scope");
        assert.equal(exchange.wwwAuthenticate.scope, "mcp:admin");
        if (era === "v2") {
          // The v2 client reads the challenge itself: the scope its step-up would ask for.
          assert.equal(error.requiredScope, "mcp:admin");
        }
        if (proxy.relaysBody) {
          assert.deepEqual(reasonsOf(exchange.body), ["scope_missing"]);
          if (era === "1.x") assert.match(error.message, /scope_missing/);
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

    test(`${sdk}: an admin with a fresh MFA sign-in on a compliant device deletes`, async () => {
      const admin = await session("admin", "compliant", {}, era);
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

    test(`${sdk}: a destructive tool after a sign-in older than 900 s: step-up with max_age`, async () => {
      const stale = await session("staleAdmin", "compliant", {}, era);
      try {
        const { exchange } = await deniedCall(stale, tools.destructive, 403, { repo: "r" });
        assert.equal(exchange.headers.get("www-authenticate"), challenges.freshSignIn);
        assert.equal(exchange.wwwAuthenticate.error, "insufficient_user_authentication");
        if (proxy.relaysBody) assert.deepEqual(reasonsOf(exchange.body), ["auth_too_old"]);
      } finally {
        await stale.close();
      }
    });
  }

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
    test("files (safe defaults): every POST is opaque, judged at the highest risk, whatever Mcp-Method says", async () => {
      const files = challengesFor("files");
      // The reader is otherwise perfect (compliant device, MFA, fresh sign-in):
      // only the missing mcp:admin separates it from the destructive class.
      const reader = sdkSession(url("files"), {
        token: await token("reader", "files"),
        device: "compliant",
      });
      try {
        const error = await unreached(() => sdkHttpError(() => reader.connect()));
        assert.equal(error.code, 403);
        const initialize = reader.last("initialize");
        assert.equal(initialize?.requestHeaders.get("mcp-method"), null, "SDK 1.32.2 sends none");
        assert.equal(initialize.headers.get("www-authenticate"), files.needsAdmin);
        // What the SDK's own parser reads: the step-up it would ask the user for.
        assert.equal(initialize.wwwAuthenticate.error, "insufficient_scope");
        assert.equal(initialize.wwwAuthenticate.scope, "mcp:admin");
        assert.equal(
          initialize.wwwAuthenticate.resourceMetadataUrl?.href,
          resourceMetadataOf("files"),
        );
      } finally {
        await reader.close();
      }
      // The same read as a raw tools/call, with and without SEP-2243 headers: on
      // files they are the client's word (no enforces_mcp_headers), so both are
      // denied; on files-sep2243, whose server checks them, the named read passes.
      const headers = {
        authorization: `Bearer ${await token("reader", "files")}`,
        "x-device-trust": "compliant",
      };
      const sep2243 = { "mcp-method": "tools/call", "mcp-name": tools.read };
      const before = env().mcp.count(tools.read);
      for (const extra of [{}, sep2243]) {
        const opaque = await unreached(() =>
          postRpc(url("files"), toolCall(tools.read, { path: "a" }), { ...headers, ...extra }),
        );
        assert.equal(opaque.status, 403, opaque.text);
        assert.equal(opaque.headers.get("www-authenticate"), files.needsAdmin);
      }
      const named = await postRpc(url("sep2243"), toolCall(tools.read, { path: "a" }), {
        authorization: `Bearer ${await token("reader", "sep2243")}`,
        "x-device-trust": "compliant",
        ...sep2243,
      });
      assert.equal(named.status, 200, named.text);
      assert.equal(env().mcp.count(tools.read), before + 1);
      assert.equal(env().mcp.last(tools.read)?.risk, "read");
    });

    test("files (safe defaults): the v2 client's own Mcp-Method is not believed either; its server/discover is opaque, judged at the highest risk", async () => {
      const reader = sdkSession(url("files"), {
        token: await token("reader", "files"),
        device: "compliant",
        era: "v2",
      });
      try {
        const error = await unreached(() => sdkHttpError(() => reader.connect()));
        assert.equal(error.code, 403);
        const discover = reader.last("server/discover");
        assert.equal(discover?.requestHeaders.get("mcp-method"), "server/discover");
        assert.equal(discover.requestHeaders.get("mcp-protocol-version"), "2026-07-28");
        assert.equal(discover.headers.get("www-authenticate"), challengesFor("files").needsAdmin);
      } finally {
        await reader.close();
      }
    });

    test("files-2026 (speaks_mcp_2026_07_28): the v2 client gets per-tool decisions from its mandatory headers alone; the 1.x client there stays opaque", async () => {
      const as = async (who: PersonaName, era: SdkEra) => {
        const mcpSession = sdkSession(url("modern"), {
          token: await token(who, "modern"),
          device: "compliant",
          era,
        });
        return mcpSession;
      };
      const reader = await as("reader", "v2");
      try {
        await reader.connect();
        const result = await reader.client.callTool({
          name: tools.read,
          arguments: { path: "a" },
        });
        assert.deepEqual(result.content, [{ type: "text", text: "read_file done" }]);
        const execution = env().mcp.last(tools.read);
        assert.equal(execution?.subject, "reader-1");
        assert.equal(execution.risk, "read", "judged as the read its headers name");
        // The tool name came from Mcp-Name only: the destructive one is refused, never run.
        const { exchange } = await deniedCall(reader, tools.destructive, 403, { repo: "r" });
        assert.equal(exchange.headers.get("www-authenticate"), challengesFor("modern").needsAdmin);
      } finally {
        await reader.close();
      }
      // The 1.x client declares 2025-11-25: its headers bind no server, every POST is opaque.
      const legacy = await as("reader", "1.x");
      try {
        const error = await unreached(() => sdkHttpError(() => legacy.connect()));
        assert.equal(error.code, 403);
        assert.equal(
          legacy.last("initialize")?.headers.get("www-authenticate"),
          challengesFor("modern").needsAdmin,
        );
      } finally {
        await legacy.close();
      }
    });

    test("files (safe defaults): an admin's opaque calls pass at the highest class (the SDK client unchanged)", async () => {
      const admin = sdkSession(url("files"), {
        token: await token("admin", "files"),
        device: "compliant",
      });
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
    const anonymous = sdkSession(url("files"), { device: "compliant" });
    try {
      const error = await unreached(() => sdkHttpError(() => anonymous.connect()));
      assert.equal(error.code, 401);
      const initialize = anonymous.last("initialize");
      assert.equal(initialize?.headers.get("www-authenticate"), challengesFor("files").noToken);
      assert.equal(
        initialize.wwwAuthenticate.resourceMetadataUrl?.href,
        resourceMetadataOf("files"),
      );
      if (proxy.relaysBody) assert.deepEqual(reasonsOf(initialize.body), ["token_missing"]);
    } finally {
      await anonymous.close();
    }
  });

  test("a token for a resource no server here has: 401 invalid_token", async () => {
    const other = sdkSession(url("files"), {
      token: await env().identity.token("otherAudience"),
      device: "compliant",
    });
    try {
      const error = await unreached(() => sdkHttpError(() => other.connect()));
      assert.equal(error.code, 401);
      const initialize = other.last("initialize");
      assert.equal(
        initialize?.headers.get("www-authenticate"),
        challengesFor("files").invalidToken,
      );
      assert.equal(initialize.wwwAuthenticate.error, "invalid_token");
      if (proxy.relaysBody) {
        assert.deepEqual(reasonsOf(initialize.body), ["token_wrong_audience"]);
      }
    } finally {
      await other.close();
    }
  });

  test("a token minted for another registered server of the same issuer: 401 token_wrong_audience, the tool never runs", async () => {
    // An admin's token for files-sep2243, used on files: the issuer, signature and
    // scopes are all fine; only the audience binds it to the other server.
    const misused = await token("admin", "sep2243");
    const other = sdkSession(url("files"), { token: misused, device: "compliant" });
    try {
      const error = await unreached(() => sdkHttpError(() => other.connect()));
      assert.equal(error.code, 401);
      const initialize = other.last("initialize");
      assert.equal(
        initialize?.headers.get("www-authenticate"),
        challengesFor("files").invalidToken,
      );
      if (proxy.relaysBody) {
        assert.deepEqual(reasonsOf(initialize.body), ["token_wrong_audience"]);
      }
    } finally {
      await other.close();
    }
    // The same token on a raw tools/call of the destructive tool, with SEP-2243 headers.
    const before = env().mcp.count(tools.destructive);
    const reply = await unreached(() =>
      postRpc(url("files"), toolCall(tools.destructive, { repo: "r" }), {
        authorization: `Bearer ${misused}`,
        "x-device-trust": "compliant",
        "mcp-method": "tools/call",
        "mcp-name": tools.destructive,
      }),
    );
    assert.equal(reply.status, 401, reply.text);
    if (proxy.relaysBody) assert.deepEqual(reasonsOf(reply.text), ["token_wrong_audience"]);
    assert.equal(env().mcp.count(tools.destructive), before);
  });

  test("a proxy route to a server the PDP does not know: 403 server_unknown, even for an admin", async () => {
    // The admin's token for files: valid, but /forward-auth/files-unregistered has no audience to bind it to.
    const lost = sdkSession(url("unregistered"), {
      token: await token("admin", "files"),
      device: "compliant",
    });
    try {
      const error = await unreached(() => sdkHttpError(() => lost.connect()));
      assert.equal(error.code, 403);
      const initialize = lost.last("initialize");
      assert.ok(initialize, "the SDK sent initialize");
      assert.match(initialize.headers.get("x-pdp-decision-id") ?? "", uuid);
      // No server, so no resource metadata to announce and no step-up that could help.
      assert.equal(initialize.headers.get("www-authenticate"), null);
      if (proxy.relaysBody) assert.deepEqual(reasonsOf(initialize.body), ["server_unknown"]);
    } finally {
      await lost.close();
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
    test("KNOWN LIMIT: a lying Mcp-Name is stopped by the default or by an SEP-2243 server; enforces_mcp_headers on a server that does not check lets it run", async () => {
      const lie = (site: SiteName) =>
        token("reader", site).then((reader) => ({
          authorization: `Bearer ${reader}`,
          "x-device-trust": "compliant",
          "mcp-method": "tools/call",
          "mcp-name": tools.read,
        }));
      const before = env().mcp.count(tools.destructive);
      // files (the default): the headers are not believed, the POST is opaque.
      const refused = await unreached(async () =>
        postRpc(url("files"), toolCall(tools.destructive, { repo: "r" }), await lie("files")),
      );
      assert.equal(refused.status, 403, refused.text);
      assert.equal(refused.headers.get("www-authenticate"), challengesFor("files").needsAdmin);
      // files-misconfigured: marked enforces_mcp_headers, but the SDK 1.32.2 server
      // does not compare headers with the body. The PDP sees a read of read_file (all
      // it can see) and allows it; the server runs delete_repo.
      const unchecked = await postRpc(
        url("misconfigured"),
        toolCall(tools.destructive, { repo: "r" }),
        await lie("misconfigured"),
      );
      assert.equal(unchecked.status, 200, unchecked.text);
      assert.equal(env().mcp.count(tools.destructive), before + 1);
      const execution = env().mcp.last(tools.destructive);
      assert.equal(execution?.subject, "reader-1");
      assert.equal(execution.risk, "read", "the PDP approved what the headers named");
      // files-sep2243: the same PDP decision, but the server checks the headers
      // against the body (SEP-2243) and refuses.
      const checked = await postRpc(
        url("sep2243"),
        toolCall(tools.destructive, { repo: "r" }),
        await lie("sep2243"),
      );
      assert.equal(checked.status, 400, checked.text);
      assert.equal(env().mcp.count(tools.destructive), before + 1);
    });

    test("without the body, batch: reject cannot hold: an admin's batch passes as one opaque POST", async () => {
      const before = env().mcp.count(tools.read);
      const reply = await postRpc(url("files"), [toolCall(tools.read, { path: "a" })], {
        authorization: `Bearer ${await token("admin", "files")}`,
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

  // Last, so that it covers every request of the scenarios above.
  test("the proxy's PDP credential is its own: a client's X-Api-Key does not replace it, and it never reaches the MCP server", async () => {
    const admin = await session("admin", "compliant", { "x-api-key": "chosen-by-the-client" });
    try {
      // Allowed: the PDP authenticated the proxy, not the client's header.
      await admin.client.callTool({ name: tools.read, arguments: { path: "a" } });
      assert.equal(env().mcp.last(tools.read)?.subject, "admin-1");
    } finally {
      await admin.close();
    }
    const requests = env().mcp.requests;
    assert.ok(requests.length > 10, "the scenarios above reached the MCP server");
    const credential = env().credential;
    for (const request of requests) {
      // Only what the client itself sent, if anything.
      assert.ok(
        [undefined, "chosen-by-the-client"].includes(request.headers["x-api-key"] as string),
        `the MCP server received X-Api-Key ${String(request.headers["x-api-key"])}`,
      );
      if (credential.kind === "api-key") {
        const everything = JSON.stringify(request.headers);
        assert.ok(!everything.includes(credential.key), "the proxy's key reached the MCP server");
      }
    }
  });
}
