/**
 * MCP 2026-07-28 through the headers-only proxies: real NGINX `auth_request`
 * and real Caddy `forward_auth` (the configurations of proxies.ts, which the
 * README shows) in front of an MCP server built on the official v2 SDK
 * (@modelcontextprotocol/server 2.4.0, 2026-07-28 only), called by the
 * official v2 client (@modelcontextprotocol/client 2.4.0, pinned to
 * 2026-07-28, so it sends MCP-Protocol-Version, Mcp-Method and Mcp-Name on
 * every request). Neither proxy shows the PDP the body; for the server
 * marked `speaks_mcp_2026_07_28` the PDP decides per tool from those
 * headers, for the same server registered without the mark it does not, and
 * a client whose headers lie is stopped by the server the mark trusts.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { createMcpHandler, McpServer } from "@modelcontextprotocol/server";
import * as z from "zod";
import { JwksServer } from "../support/jwks-server.ts";
import { writeNginxConf } from "../support/nginx-conf.ts";
import { startPdp, type RunningPdp } from "../support/pdp.ts";
import { generateTestKey, mint, type TestKey } from "../support/tokens.ts";
import { freePort, spawnManaged, waitForHttp, type Managed } from "./support/processes.ts";
import {
  caddySite,
  nginxAuthRequestServer,
  nginxUpstreams,
  spawnCaddy,
} from "./support/proxies.ts";

const operatorData = fileURLToPath(new URL("../../examples/operator-data.yaml", import.meta.url));
const issuer = "https://idp.example.com";
/** `files` is marked speaks_mcp_2026_07_28; `files-unmarked` is the same server without it. */
const resources = {
  files: "https://mcp.example.com/files",
  "files-unmarked": "https://mcp.example.com/files-unmarked",
} as const;
type ServerName = keyof typeof resources;
const serverNames = Object.keys(resources) as ServerName[];

// Inside operator-data.yaml's destructive hours (hours_utc [7, 19]).
const noonUtcMs = Date.UTC(2026, 2, 10, 12, 0, 0);
const nowS = noonUtcMs / 1000;

const root = mkdtempSync(join(tmpdir(), "mcp-pdp-e2e-2026-"));
const dir = (name: string) => {
  const path = join(root, name);
  mkdirSync(path, { recursive: true });
  return path;
};
const proxyKey = randomBytes(32).toString("base64");
const managed: Managed[] = [];
const closers: (() => Promise<void>)[] = [];
let key: TestKey;
let pdp: RunningPdp;
/** Every tool the MCP server ran, in order. */
const ran: string[] = [];
/** Proxy name → server name → the proxy's origin for it. */
const origins: Record<string, Record<ServerName, string>> = {};

/** The official v2 server, 2026-07-28 only, over node:http. */
async function startMcpServer(): Promise<string> {
  const handler = createMcpHandler(
    () => {
      const server = new McpServer({ name: "files", version: "1.0.0" });
      for (const name of ["read_file", "delete_repo"]) {
        server.registerTool(
          name,
          { description: name, inputSchema: z.object({ path: z.string() }) },
          ({ path }) => {
            ran.push(name);
            return Promise.resolve({
              content: [{ type: "text" as const, text: `${name} ${path}` }],
            });
          },
        );
      }
      return server;
    },
    { legacy: "reject" },
  );
  const http: Server = createServer((req, res) => {
    void (async () => {
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      const headers = new Headers();
      for (const [name, value] of Object.entries(req.headers)) {
        if (typeof value === "string") headers.set(name, value);
      }
      const response = await handler.fetch(
        new Request(`http://127.0.0.1${req.url ?? "/"}`, {
          method: req.method ?? "GET",
          headers,
          ...(chunks.length === 0 ? {} : { body: Buffer.concat(chunks) }),
        }),
      );
      res.writeHead(response.status, Object.fromEntries(response.headers));
      if (response.body !== null) for await (const chunk of response.body) res.write(chunk);
      res.end();
    })().catch((error: unknown) => {
      res.destroy(error instanceof Error ? error : new Error(String(error)));
    });
  });
  await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
  closers.push(async () => {
    await handler.close();
    http.closeAllConnections();
    await new Promise<void>((resolve) => {
      http.close(() => {
        resolve();
      });
    });
  });
  return `127.0.0.1:${(http.address() as AddressInfo).port}`;
}

async function startNginx(pdpAddress: string, mcp: string): Promise<Record<ServerName, string>> {
  const nginxDir = dir("nginx");
  // Workers run as an unprivileged user when nginx starts as root: let them in.
  chmodSync(root, 0o755);
  chmodSync(nginxDir, 0o755);
  const keyFile = join(nginxDir, "mcp-pdp-key.conf");
  writeFileSync(keyFile, `proxy_set_header X-Api-Key "${proxyKey}";\n`);
  chmodSync(keyFile, 0o644);
  const ports = { files: await freePort(), "files-unmarked": await freePort() };
  const { binary, args } = writeNginxConf({
    dir: nginxDir,
    workerConnections: 64,
    http: `${nginxUpstreams({ pdp: pdpAddress, mcp: { files: mcp, "files-unmarked": mcp } })}
${serverNames
  .map((server) =>
    nginxAuthRequestServer({ listen: `127.0.0.1:${ports[server]}`, server, keyFile }),
  )
  .join("\n")}`,
  });
  const nginx = spawnManaged("nginx", binary, args, { cwd: nginxDir });
  managed.push(nginx);
  return ready(nginx, ports);
}

async function startCaddy(pdpAddress: string, mcp: string): Promise<Record<ServerName, string>> {
  const caddyDir = dir("caddy");
  const ports = { files: await freePort(), "files-unmarked": await freePort() };
  const sites = serverNames.map((server) =>
    caddySite({
      site: `http://127.0.0.1:${ports[server]}`,
      bind: "127.0.0.1",
      pdp: pdpAddress,
      mcp,
      server,
    }),
  );
  const caddy = spawnCaddy(caddyDir, sites, proxyKey);
  managed.push(caddy);
  return ready(caddy, ports);
}

/** Waits until each site answers a tokenless GET with the PDP's 401: proxy and PDP both up. */
async function ready(
  proxy: Managed,
  ports: Record<ServerName, number>,
): Promise<Record<ServerName, string>> {
  const result = {} as Record<ServerName, string>;
  for (const server of serverNames) {
    result[server] = `http://127.0.0.1:${ports[server]}`;
    await waitForHttp(`${result[server]}/mcp`, proxy, (status) => status === 401, 20000);
  }
  return result;
}

before(async () => {
  key = await generateTestKey("ES256");
  const jwks = await JwksServer.start([key.publicJwk]);
  closers.push(() => jwks.close());
  const configFile = join(dir("pdp"), "pdp-config.json");
  writeFileSync(
    configFile,
    JSON.stringify({
      issuers: [{ issuer, jwks_uri: jwks.url }],
      servers: {
        files: { resource: resources.files, speaks_mcp_2026_07_28: true },
        "files-unmarked": { resource: resources["files-unmarked"] },
      },
      callers: [
        {
          name: "proxy",
          api_key_sha256: [createHash("sha256").update(proxyKey).digest("hex")],
          permissions: ["forward_auth"],
        },
      ],
      forward_auth: {
        trusted_proxies: ["127.0.0.1/32", "::1/128"],
        context_headers: { "x-device-trust": "device.trust" },
      },
    }),
  );
  pdp = await startPdp({
    env: { PDP_CONFIG: configFile, PDP_DATA: operatorData },
    clock: () => noonUtcMs,
  });
  closers.push(() => pdp.close());
  const mcp = await startMcpServer();
  const pdpAddress = new URL(pdp.url).host;
  origins.nginx = await startNginx(pdpAddress, mcp);
  origins.caddy = await startCaddy(pdpAddress, mcp);
});

after(async () => {
  for (const proxy of managed.reverse()) await proxy.stop();
  for (const close of closers.reverse()) await close();
  rmSync(root, { recursive: true, force: true });
});

function tokenFor(server: ServerName, scope: string): Promise<string> {
  return mint(key, {
    iss: issuer,
    sub: scope.includes("mcp:admin") ? "root" : "alice",
    aud: resources[server],
    iat: nowS - 60,
    exp: nowS + 3600,
    auth_time: nowS - 300,
    acr: "mfa",
    scope,
  });
}

/** The official v2 client, pinned to 2026-07-28, through a proxy site. */
async function connect(origin: string, token: string): Promise<Client> {
  const client = new Client(
    { name: "e2e", version: "1.0.0" },
    { versionNegotiation: { mode: { pin: "2026-07-28" } } },
  );
  const transport = new StreamableHTTPClientTransport(new URL(`${origin}/mcp`), {
    requestInit: { headers: { authorization: `Bearer ${token}`, "x-device-trust": "compliant" } },
  });
  await client.connect(transport);
  return client;
}

function text(result: unknown): string {
  const content = (result as { content?: { text?: string }[] }).content ?? [];
  return content.map((item) => item.text ?? "").join("");
}

for (const proxy of ["nginx", "caddy"] as const) {
  describe(`${proxy}, headers only, MCP 2026-07-28`, () => {
    const site = (server: ServerName) => origins[proxy]?.[server] ?? "";

    test("a reader: discover, list and read run; the delete is refused per tool", async () => {
      ran.length = 0;
      const reader = await connect(site("files"), await tokenFor("files", "mcp:read"));
      try {
        const listed = await reader.listTools();
        assert.deepEqual(listed.tools.map((tool) => tool.name).sort(), [
          "delete_repo",
          "read_file",
        ]);
        assert.equal(
          text(await reader.callTool({ name: "read_file", arguments: { path: "/a" } })),
          "read_file /a",
        );
        await assert.rejects(reader.callTool({ name: "delete_repo", arguments: { path: "/" } }));
      } finally {
        await reader.close();
      }
      assert.deepEqual(ran, ["read_file"]);
      // The PDP judged the tool the headers named: the per-tool decision a headers-only proxy lacked.
      const last = pdp.decisions.at(-1) as { resource?: { id?: string }; decision?: unknown };
      assert.equal(last.resource?.id, "delete_repo", JSON.stringify(last).slice(0, 600));
    });

    test("an admin: the delete runs", async () => {
      ran.length = 0;
      const scope = "mcp:read mcp:write mcp:admin";
      const admin = await connect(site("files"), await tokenFor("files", scope));
      try {
        await admin.callTool({ name: "delete_repo", arguments: { path: "/" } });
      } finally {
        await admin.close();
      }
      assert.deepEqual(ran, ["delete_repo"]);
    });

    test("the same server without the mark: opaque, so a reader cannot even discover it", async () => {
      const token = await tokenFor("files-unmarked", "mcp:read");
      await assert.rejects(connect(site("files-unmarked"), token));
      const answer = await fetch(`${site("files-unmarked")}/mcp`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${token}`,
          "x-device-trust": "compliant",
          "content-type": "application/json",
          accept: "application/json, text/event-stream",
          "mcp-protocol-version": "2026-07-28",
          "mcp-method": "tools/list",
        },
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list", params: {} }),
      });
      await answer.body?.cancel();
      assert.equal(answer.status, 403);
      const last = pdp.decisions.at(-1) as { action?: string };
      assert.equal(last.action, "mcp/opaque");
      assert.match(answer.headers.get("www-authenticate") ?? "", /scope="mcp:admin"/);
    });

    test("headers naming a read over a body that deletes: the PDP allows the read, the server refuses", async () => {
      ran.length = 0;
      const answer = await fetch(`${site("files")}/mcp`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${await tokenFor("files", "mcp:read")}`,
          "x-device-trust": "compliant",
          "content-type": "application/json",
          accept: "application/json, text/event-stream",
          "mcp-protocol-version": "2026-07-28",
          "mcp-method": "tools/call",
          "mcp-name": "read_file",
        },
        body: JSON.stringify({
          jsonrpc: "2.0",
          id: 9,
          method: "tools/call",
          params: {
            name: "delete_repo",
            arguments: { path: "/" },
            _meta: {
              "io.modelcontextprotocol/protocolVersion": "2026-07-28",
              "io.modelcontextprotocol/clientCapabilities": {},
            },
          },
        }),
      });
      const body = (await answer.json()) as { error?: { code?: number } };
      assert.equal(answer.status, 400);
      assert.equal(body.error?.code, -32020);
      assert.deepEqual(ran, []);
      // It was the server: the PDP, seeing only the headers, allowed a read of read_file.
      const last = pdp.decisions.at(-1) as { resource?: { id?: string }; outcome?: string };
      assert.deepEqual([last.resource?.id, last.outcome], ["read_file", "allow"]);
    });
  });
}
