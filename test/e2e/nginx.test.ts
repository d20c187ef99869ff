/**
 * mcp-pdp behind a real NGINX (1.22 + njs): auth_request (headers only) and an
 * njs handler that sends the JSON-RPC body along. A real MCP server (the
 * official SDK) behind it, the official SDK client in front. The PDP has
 * `callers`: NGINX sends its API key (from an include file) on the auth
 * subrequest only.
 */
import { after, before, describe, test } from "node:test";
import { E2eEnvironment } from "./support/environment.ts";
import { apiKeyDigest } from "./support/pdp-process.ts";
import { makeNginxKey, nginxKeyFile, startNginx, type RunningProxy } from "./support/proxies.ts";
import { assertReadmeShows } from "./support/readme.ts";
import { defineProxyScenarios } from "./support/scenarios.ts";

// The key is made by the README's own commands (openssl, the include file, sha256sum).
const env = new E2eEnvironment({
  kind: "api-key",
  makeKey: (dir) => makeNginxKey(dir, apiKeyDigest),
});
let nginx: { plain: RunningProxy; njs: RunningProxy } | undefined;

before(async () => {
  await env.start();
  nginx = await startNginx(env.dir("nginx"), env, nginxKeyFile(env.dir("key")));
  env.own(nginx.plain.process);
});

after(async () => {
  await env.stop();
});

function running(): { plain: RunningProxy; njs: RunningProxy } {
  if (nginx === undefined) throw new Error(`nginx did not start:\n${env.diagnostics()}`);
  return nginx;
}

describe("nginx auth_request: headers only", () => {
  defineProxyScenarios(
    { seesBody: false, relaysBody: false },
    () => running().plain.origins,
    () => env,
  );
});

describe("nginx + njs: the body goes to the PDP", () => {
  defineProxyScenarios(
    { seesBody: true, relaysBody: true },
    () => running().njs.origins,
    () => env,
  );
});

test("the README shows the configuration these tests run", () => {
  assertReadmeShows("pdpConfig");
  assertReadmeShows("nginxKey");
  assertReadmeShows("nginxAuthRequest");
  assertReadmeShows("nginxNjs");
  assertReadmeShows("njsScript");
});
