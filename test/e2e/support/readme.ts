import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { stringify as toYaml } from "yaml";
import { repoRoot } from "../../support/opa.js";
import { filesResource } from "./identity.js";
import { forwardAuthSettings, serverSettings } from "./pdp-process.js";
import {
  caddySite,
  nginxAuthRequestServer,
  nginxNjsServer,
  nginxUpstreams,
  njsScript,
  traefikDynamic,
} from "./proxies.js";

/** Placeholder addresses of the README's snippets: the PDP on its default port. */
const upstreams = { pdp: "127.0.0.1:8180", mcp: "127.0.0.1:3000" };

/**
 * The README's "Putting it behind a proxy" snippets: the very configurations
 * the e2e tests run, with placeholder addresses instead of ephemeral ports.
 */
export const readmeSnippets = {
  pdpConfig: toYaml({
    issuers: [
      {
        issuer: "https://issuer.example.com",
        jwks_uri: "https://issuer.example.com/jwks.json",
        audiences: [filesResource],
      },
    ],
    servers: serverSettings,
    forward_auth: forwardAuthSettings,
  }),
  nginxAuthRequest: `${nginxUpstreams(upstreams)}\n${nginxAuthRequestServer({ listen: "80" })}`,
  nginxNjs: nginxNjsServer({ listen: "80", script: "/etc/nginx/njs/mcp-pdp.js" }),
  njsScript,
  caddy: caddySite({ site: "mcp.example.com", ...upstreams }),
  traefik: traefikDynamic({ ...upstreams, entryPoint: "websecure" }),
};

/** Fails unless README.md holds `snippet` verbatim inside a fenced code block. */
export function assertReadmeShows(name: keyof typeof readmeSnippets): void {
  const readme = readFileSync(join(repoRoot, "README.md"), "utf8");
  const snippet = readmeSnippets[name];
  const blocks = [...readme.matchAll(/^```[a-z]*\n([\s\S]*?)^```$/gm)].map((m) => m[1] ?? "");
  assert.ok(
    blocks.some((block) => block === snippet),
    `README.md lost the ${name} snippet that the e2e tests run; put back:\n${snippet}`,
  );
}
