/**
 * IPv4-mapped IPv6 addresses meet IPv4 networks. The default policy with
 * examples/operator-data.yaml requires `networks: [10.0.0.0/8]` for the write
 * class; `::ffff:10.1.2.3` (what node reports for an IPv4 client of a
 * dual-stack listener, and what a proxy may forward) is the IPv4 client
 * 10.1.2.3, on AuthZEN (`context.ip`) and on forward-auth (X-Forwarded-For
 * from a trusted proxy). The PDP runs over real HTTP with a frozen clock; the
 * forward-auth token is signed by a test key served from a real JWKS server.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { startForwardAuthPdp } from "../support/forward-auth-pdp.ts";
import { scratchDir } from "../support/opa.ts";
import { postJson, startPdp, type RunningPdp } from "../support/pdp.ts";

type Json = Record<string, unknown>;

const operatorData = fileURLToPath(new URL("../../examples/operator-data.yaml", import.meta.url));
const nowMs = Date.UTC(2026, 2, 10, 12, 0, 0);
const nowS = nowMs / 1000;
const clock = () => nowMs;

/** Spellings of 10.1.2.3, which 10.0.0.0/8 contains. */
const inside = [
  "10.1.2.3",
  "::ffff:10.1.2.3",
  "::FFFF:10.1.2.3",
  "::ffff:a01:203",
  "::ffff:0a01:0203",
  "0:0:0:0:0:ffff:a01:203",
  "0000:0000:0000:0000:0000:ffff:10.1.2.3",
];
/** Addresses outside it, some of them IPv6 forms that merely look alike. */
const outside = [
  "11.1.2.3",
  "::ffff:11.1.2.3",
  "::ffff:b01:203",
  "::ffff:0:10.1.2.3", // IPv4-translated (RFC 6052/SIIT), not IPv4-mapped
  "::10.1.2.3", // IPv4-compatible (deprecated), not IPv4-mapped
  "64:ff9b::a01:203", // NAT64
];

const scratch = scratchDir();
const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const close of closers.reverse()) await close();
  scratch.remove();
});

interface AuthzenAnswer {
  decision: boolean;
  context: { reasons: { code: string }[] };
}

describe("AuthZEN: context.ip", () => {
  let pdp: RunningPdp;
  before(async () => {
    pdp = await startPdp({ env: { PDP_DATA: operatorData }, clock });
    closers.push(() => pdp.close());
  });

  async function writeFrom(ip: string): Promise<AuthzenAnswer> {
    const answer = await postJson(`${pdp.url}/access/v1/evaluation`, {
      subject: {
        type: "user",
        id: "bob",
        properties: { scope: "mcp:read mcp:write", auth_time: nowS - 300 },
      },
      action: { name: "tools/call" },
      resource: { type: "tool", id: "files/write_file" },
      context: { ip, device: { trust: "managed" } },
    });
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    return answer.body as AuthzenAnswer;
  }

  for (const ip of inside) {
    test(`${ip} is inside 10.0.0.0/8: write is allowed`, async () => {
      const answer = await writeFrom(ip);
      assert.equal(answer.decision, true, JSON.stringify(answer.context.reasons));
    });
  }

  for (const ip of outside) {
    test(`${ip} is outside 10.0.0.0/8: network_denied`, async () => {
      const answer = await writeFrom(ip);
      assert.equal(answer.decision, false);
      assert.deepEqual(
        answer.context.reasons.map((reason) => reason.code),
        ["network_denied"],
      );
    });
  }

  test("the policy's message names the normalized address", async () => {
    // The deny message quotes input.context.ip: what the policy saw.
    const answer = (await postJson(`${pdp.url}/access/v1/evaluation`, {
      subject: { type: "user", id: "bob", properties: { scope: "mcp:write" } },
      action: { name: "tools/call" },
      resource: { type: "tool", id: "files/write_file" },
      context: { ip: "::ffff:b01:203", device: { trust: "managed" } },
    })) as { body: { context: { reasons: { code: string; admin: string }[] } } };
    const network = answer.body.context.reasons.find((r) => r.code === "network_denied");
    assert.ok(network);
    assert.equal(network.admin, "client address 11.1.2.3 is outside the allowed networks");
  });
});

describe("forward-auth: X-Forwarded-For from a trusted proxy", () => {
  let pdp: RunningPdp;
  let token = "";
  before(async () => {
    ({ pdp, token } = await startForwardAuthPdp({
      dir: scratch.dir,
      operatorData,
      clock,
      sub: "bob",
      scope: "mcp:read mcp:write",
      closers,
    }));
  });

  /** A JSON-RPC write_file call relayed with its body (as Envoy or Traefik with forwardBody do). */
  async function writeFrom(forwardedFor: string): Promise<{ status: number; body: Json }> {
    const response = await fetch(`${pdp.url}/forward-auth/files/mcp`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${token}`,
        "content-type": "application/json",
        "x-forwarded-for": forwardedFor,
        "x-device-trust": "managed",
      },
      body: JSON.stringify({
        jsonrpc: "2.0",
        id: 1,
        method: "tools/call",
        params: { name: "write_file", arguments: { path: "a.txt" } },
      }),
    });
    const text = await response.text();
    return { status: response.status, body: (text === "" ? {} : JSON.parse(text)) as Json };
  }

  for (const ip of ["10.1.2.3", "::ffff:10.1.2.3", "::ffff:a01:203", "0:0:0:0:0:ffff:a01:203"]) {
    test(`${ip}: write is allowed`, async () => {
      const answer = await writeFrom(ip);
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
    });
  }

  for (const ip of ["::ffff:b01:203", "::ffff:0:10.1.2.3"]) {
    test(`${ip}: 403 network_denied`, async () => {
      const answer = await writeFrom(ip);
      assert.equal(answer.status, 403, JSON.stringify(answer.body));
      const error = answer.body.error as { data: { reasons: string[] } };
      assert.deepEqual(error.data.reasons, ["network_denied"]);
    });
  }
});
