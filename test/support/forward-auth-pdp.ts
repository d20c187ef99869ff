import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Clock } from "../../src/decision/decision-engine.ts";
import { JwksServer } from "./jwks-server.ts";
import { startPdp, type RunningPdp } from "./pdp.ts";
import { generateTestKey, mint } from "./tokens.ts";

export const forwardAuthIssuer = "https://idp.test";
export const forwardAuthResource = "https://mcp.test/files";

/**
 * A PDP for forward-auth tests: one issuer on a real JWKS server, the `files`
 * server registered, loopback a trusted proxy that reports `x-device-trust`,
 * the given operator data and a frozen clock; and a token of `sub` with
 * `scope` for `files`, signed in 5 minutes before `clock()`. Everything it
 * starts is pushed onto `closers`.
 */
export async function startForwardAuthPdp(options: {
  dir: string;
  operatorData: string;
  clock: Clock;
  sub: string;
  scope: string;
  closers: (() => Promise<void>)[];
}): Promise<{ pdp: RunningPdp; token: string }> {
  const nowS = Math.floor(options.clock() / 1000);
  const key = await generateTestKey("ES256");
  const jwks = await JwksServer.start([key.publicJwk]);
  options.closers.push(() => jwks.close());
  const token = await mint(key, {
    iss: forwardAuthIssuer,
    sub: options.sub,
    aud: forwardAuthResource,
    iat: nowS - 60,
    exp: nowS + 3600,
    auth_time: nowS - 300,
    scope: options.scope,
  });
  const config = join(options.dir, `pdp-config-${options.sub}.json`);
  writeFileSync(
    config,
    JSON.stringify({
      issuers: [
        { issuer: forwardAuthIssuer, jwks_uri: jwks.url, audiences: [forwardAuthResource] },
      ],
      servers: { files: { resource: forwardAuthResource } },
      forward_auth: {
        trusted_proxies: ["127.0.0.1/32"],
        context_headers: { "x-device-trust": "device.trust" },
      },
    }),
  );
  const pdp = await startPdp({
    env: { PDP_CONFIG: config, PDP_DATA: options.operatorData },
    clock: options.clock,
  });
  options.closers.push(() => pdp.close());
  return { pdp, token };
}
