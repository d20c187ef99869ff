import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { stringify as toYaml } from "yaml";
import { repoRoot } from "../../support/opa.ts";
import { apiKeyCallers, mtlsCallers, proxyPdpConfig } from "./pdp-process.ts";
import {
  caddySite,
  envoyConfig,
  nginxAuthRequestServer,
  nginxKeyCommands,
  nginxNjsHttp,
  nginxNjsServer,
  nginxUpstreams,
  njsScript,
  readmeNginxKeyFile,
  traefikDynamic,
} from "./proxies.ts";
import { resourceOf } from "./sites.ts";

/** Placeholder addresses of the README's snippets: the PDP on its default port. */
const upstreams = { pdp: "127.0.0.1:8180", mcp: "127.0.0.1:3000" };

/** A digest nobody holds the key to: the README's placeholder for the proxy key's SHA-256. */
export const placeholderDigest = "0".repeat(64);

/**
 * The README's "Putting it behind a proxy" snippets: the very configurations
 * the e2e tests run, with placeholder addresses, paths and digest instead of
 * ephemeral ports and this run's credentials, for the one server `files`.
 */
export const readmeSnippets = {
  pdpConfig: toYaml(
    proxyPdpConfig({
      issuer: "https://issuer.example.com",
      jwksUri: "https://issuer.example.com/jwks.json",
      servers: { files: { resource: resourceOf("files") } },
      callers: apiKeyCallers(placeholderDigest),
    }),
  ),
  pdpConfigMtls: toYaml(
    mtlsCallers({
      subject: "proxy.mcp.internal",
      certFile: "/etc/mcp-pdp/tls/server.crt",
      keyFile: "/etc/mcp-pdp/tls/server.key",
      clientCaFile: "/etc/mcp-pdp/tls/clients-ca.crt",
    }),
  ),
  nginxKey: nginxKeyCommands(readmeNginxKeyFile),
  nginxAuthRequest: `${nginxUpstreams({ pdp: upstreams.pdp, mcp: { files: upstreams.mcp } })}\n${nginxAuthRequestServer({ listen: "80", server: "files", keyFile: readmeNginxKeyFile })}`,
  nginxNjs: `${nginxNjsHttp({ script: "/etc/nginx/njs/mcp-pdp.js" })}\n${nginxNjsServer({ listen: "80", server: "files", keyFile: readmeNginxKeyFile })}`,
  njsScript,
  caddy: caddySite({ site: "mcp.example.com", ...upstreams, server: "files" }),
  envoy: envoyConfig({
    pdp: { address: "127.0.0.1", port: 8180, name: "mcp-pdp.internal" },
    server: "files",
    tls: {
      ca: "/etc/envoy/mcp-pdp/ca.crt",
      cert: "/etc/envoy/mcp-pdp/proxy.crt",
      key: "/etc/envoy/mcp-pdp/proxy.key",
    },
  }),
  envoyServers: toYaml({
    servers: { files: { resource: resourceOf("files"), proxy: "envoy" } },
  }),
  traefik: traefikDynamic({
    pdp: upstreams.pdp,
    tls: {
      ca: "/etc/traefik/mcp-pdp/ca.crt",
      cert: "/etc/traefik/mcp-pdp/proxy.crt",
      key: "/etc/traefik/mcp-pdp/proxy.key",
    },
    sites: [{ server: "files", mcp: upstreams.mcp, entryPoint: "websecure" }],
  }),
};

/** The fenced code blocks of README.md: language and text. */
export function readmeBlocks(): { lang: string; text: string }[] {
  const readme = readFileSync(join(repoRoot, "README.md"), "utf8");
  return [...readme.matchAll(/^```([a-z]*)\n([\s\S]*?)^```$/gm)].map((m) => ({
    lang: m[1] ?? "",
    text: m[2] ?? "",
  }));
}

/** Fails unless README.md holds `snippet` verbatim inside a fenced code block. */
export function assertReadmeShows(name: keyof typeof readmeSnippets): void {
  const snippet = readmeSnippets[name];
  assert.ok(
    readmeBlocks().some((block) => block.text === snippet),
    `README.md lost the ${name} snippet that the e2e tests run; put back:\n${snippet}`,
  );
}
