/**
 * mcp-pdp behind a real NGINX (1.22 + njs): auth_request (headers only) and an
 * njs handler that sends the JSON-RPC body along. A real MCP server (the
 * official SDK) behind it, the official SDK client in front.
 */
import { after, before, describe, test } from "node:test";
import { E2eEnvironment } from "./support/environment.js";
import { startNginx, type RunningProxy } from "./support/proxies.js";
import { assertReadmeShows } from "./support/readme.js";
import { defineProxyScenarios } from "./support/scenarios.js";

const env = new E2eEnvironment();
let nginx: { plain: RunningProxy; njs: RunningProxy } | undefined;

before(async () => {
  await env.start();
  nginx = await startNginx(env.dir("nginx"), env.ports);
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
    () => running().plain.origin,
    () => env,
  );
});

describe("nginx + njs: the body goes to the PDP", () => {
  defineProxyScenarios(
    { seesBody: true, relaysBody: true },
    () => running().njs.origin,
    () => env,
  );
});

test("the README shows the configuration these tests run", () => {
  assertReadmeShows("nginxAuthRequest");
  assertReadmeShows("nginxNjs");
  assertReadmeShows("njsScript");
  assertReadmeShows("pdpConfig");
});
