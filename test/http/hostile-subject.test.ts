/**
 * A valid token whose `sub` is not a legal HTTP header value, on an allowed
 * forward-auth request (which echoes the subject in `x-pdp-subject`), used to
 * kill the real process: setHeader threw inside a promise nobody handled.
 * Now each such request is answered (500 `internal_error`, or 200 once the
 * subject is encoded at its source) with legal headers only, and the process
 * keeps serving the requests after it.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { repoRoot, scratchDir } from "../support/opa.ts";
import { freePort } from "../support/ports.ts";
import { generateTestKey, mint, type TestKey } from "../support/tokens.ts";
import { startMain, waitForLog, type MainProcess } from "../support/main-process.ts";

const scratch = scratchDir();
const issuer = "https://idp.test";
const resource = "https://mcp.test/files";
const pepKey = randomBytes(24).toString("base64url");
let key: TestKey;
let pdp: MainProcess;
let url: string;

before(async () => {
  key = await generateTestKey("ES256");
  const jwksFile = join(scratch.dir, "jwks.json");
  writeFileSync(jwksFile, JSON.stringify({ keys: [key.publicJwk] }));
  const configFile = join(scratch.dir, "pdp-config.json");
  writeFileSync(
    configFile,
    JSON.stringify({
      issuers: [{ issuer, jwks_file: jwksFile, audiences: [resource] }],
      callers: [
        {
          name: "proxy",
          api_key_sha256: [createHash("sha256").update(pepKey).digest("hex")],
          permissions: ["forward_auth"],
        },
      ],
      servers: { files: { resource } },
      forward_auth: {
        trusted_proxies: ["127.0.0.1/32"],
        context_headers: { "x-device-trust": "device.trust" },
      },
    }),
  );
  const port = await freePort();
  url = `http://127.0.0.1:${port}`;
  pdp = startMain({
    PORT: String(port),
    PDP_CONFIG: configFile,
    PDP_DATA: join(repoRoot, "examples", "operator-data.yaml"),
    PDP_DECISION_LOG: "off",
    PDP_DRAIN_DELAY_MS: "0",
  });
  await waitForLog(pdp, "listening");
});
after(async () => {
  await pdp.kill();
  scratch.remove();
});

/** An allowed read_file through forward-auth, for a token with this `sub`. */
async function readFileAs(sub: string) {
  const nowS = Math.floor(Date.now() / 1000);
  const token = await mint(key, {
    iss: issuer,
    sub,
    aud: resource,
    iat: nowS - 60,
    exp: nowS + 600,
    auth_time: nowS - 300,
    scope: "mcp:read",
  });
  return fetch(`${url}/forward-auth/files/mcp`, {
    method: "POST",
    headers: {
      "x-api-key": pepKey,
      authorization: `Bearer ${token}`,
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
      "x-device-trust": "managed",
    },
    body: JSON.stringify({
      jsonrpc: "2.0",
      id: 1,
      method: "tools/call",
      params: { name: "read_file", arguments: { path: "/etc/motd" } },
    }),
  });
}

test("a legal subject is allowed and echoed (the request the hostile ones copy)", async () => {
  const response = await readFileAs("user-1");
  assert.equal(response.status, 200, await response.text());
  assert.equal(response.headers.get("x-pdp-subject"), "user-1");
});

const hostile: Record<string, string> = {
  "CJK (BMP, beyond Latin-1)": "用户-1",
  "an emoji (astral plane)": "user-😀",
  "CR LF (header injection)": "user-1\r\nx-injected: yes",
  "a lone LF": "user-1\nx-injected: yes",
  DEL: "user\x7f1",
  NUL: "user\x001",
  "a private-use plane character": "user-\u{10fffd}",
};

for (const [name, sub] of Object.entries(hostile)) {
  test(`sub with ${name}: answered with legal headers, and the process keeps serving`, async () => {
    const response = await readFileAs(sub);
    assert.ok([200, 500].includes(response.status), `status ${response.status}`);
    assert.equal(response.headers.get("x-injected"), null, "no header injected");
    if (response.status === 500) {
      assert.equal(((await response.json()) as { code: string }).code, "internal_error");
    } else {
      // Encoded at the source: whatever is echoed is a legal value and not the raw claim.
      assert.notEqual(response.headers.get("x-pdp-subject"), sub);
    }
    assert.ok(!pdp.exited(), `the process exited:\n${pdp.output()}`);
    assert.equal((await fetch(`${url}/health`)).status, 200);
    assert.equal((await readFileAs("user-1")).status, 200);
  });
}
