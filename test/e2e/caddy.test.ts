/**
 * mcp-pdp behind a real Caddy (2.6) with forward_auth: a GET carrying the
 * client's headers and X-Forwarded-Method/-Uri, never the body. A real MCP
 * server (the official SDK) behind it, the official SDK client in front. The
 * PDP has `callers`: Caddy sends its API key (from its environment) on the
 * auth request only.
 */
import { after, before, describe, test } from "node:test";
import { E2eEnvironment } from "./support/environment.ts";
import { startCaddy, type RunningProxy } from "./support/proxies.ts";
import { assertReadmeShows } from "./support/readme.ts";
import { defineProxyScenarios } from "./support/scenarios.ts";

const env = new E2eEnvironment({ kind: "api-key" });
let caddy: RunningProxy | undefined;

before(async () => {
  await env.start();
  caddy = await startCaddy(env.dir("caddy"), env);
  env.own(caddy.process);
});

after(async () => {
  await env.stop();
});

describe("caddy forward_auth: headers only", () => {
  defineProxyScenarios(
    { seesBody: false, relaysBody: true },
    () => {
      if (caddy === undefined) throw new Error(`caddy did not start:\n${env.diagnostics()}`);
      return caddy.origins;
    },
    () => env,
  );
});

test("the README shows the configuration these tests run", () => {
  assertReadmeShows("pdpConfig");
  assertReadmeShows("caddy");
});
