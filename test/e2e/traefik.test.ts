/**
 * mcp-pdp behind a real Traefik (v3.7) with ForwardAuth and forwardBody: the
 * PDP reads the JSON-RPC body. A real MCP server (the official SDK) behind it,
 * the official SDK client in front. The PDP has `callers` and listens with
 * mTLS: Traefik presents its client certificate on the auth request.
 */
import { after, before, describe, test } from "node:test";
import { E2eEnvironment } from "./support/environment.ts";
import { startTraefik, type RunningProxy } from "./support/proxies.ts";
import { assertReadmeShows } from "./support/readme.ts";
import { defineProxyScenarios } from "./support/scenarios.ts";

const env = new E2eEnvironment({ kind: "mtls" });
let traefik: RunningProxy | undefined;

before(async () => {
  await env.start();
  traefik = await startTraefik(env.dir("traefik"), env);
  env.own(traefik.process);
});

after(async () => {
  await env.stop();
});

describe("traefik forwardAuth + forwardBody: the body goes to the PDP", () => {
  defineProxyScenarios(
    { seesBody: true, relaysBody: true },
    () => {
      if (traefik === undefined) throw new Error(`traefik did not start:\n${env.diagnostics()}`);
      return traefik.origins;
    },
    () => env,
  );
});

test("the README shows the configuration these tests run", () => {
  assertReadmeShows("pdpConfigMtls");
  assertReadmeShows("traefik");
});
