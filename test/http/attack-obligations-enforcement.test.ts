/**
 * Attack on the obligations a policy attaches to an allow, at the PDP's own
 * enforcement point: forward-auth. The obligations profile's rule (and the
 * PDP's README for profile PEPs) is that a PEP which cannot perform an
 * obligation must treat the answer as a deny. Forward-auth performs one
 * obligation only, `step_up` (as a challenge, on a deny); an allow carrying
 * any other is one it cannot honour. The PEP library (@mcp-pdp/pep) reads
 * the PDP's answer with the same rule, so it is asked the same question.
 *
 * Both attacks were findings (the allow passed as an allow); the tests state
 * the fixed behaviour: a deny with the reason obligation_unsupported.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { evaluate } from "../../src/pep/pdp-client.ts";
import { buildWasmBundle, scratchDir } from "../support/opa.ts";
import { postJson, startPdp, type RunningPdp } from "../support/pdp.ts";

const scratch = scratchDir();
let pdp: RunningPdp;

/**
 * An MCP policy that lets anyone read_file, and lets anyone export_records
 * only on condition that the enforcement point redacts the SSNs in it.
 */
const policy = `package acme.mcp

import rego.v1

default decision := {"allow": false, "reasons": [{"code": "method_denied"}]}

decision := {"allow": true} if {
	input.action.name == "tools/call"
	input.resource.properties.tool == "read_file"
}

decision := {"allow": true, "obligations": {"redact": {"fields": ["ssn"]}}} if {
	input.action.name == "tools/call"
	input.resource.properties.tool == "export_records"
}
`;

before(async () => {
  const bundle = buildWasmBundle(scratch.dir, { "p.rego": policy }, ["acme/mcp/decision"]);
  const config = join(scratch.dir, "pdp-config.json");
  writeFileSync(
    config,
    JSON.stringify({
      issuers: [{ issuer: "https://idp.example.com", jwks_uri: "http://127.0.0.1:9/jwks" }],
      servers: { files: { resource: "https://mcp.example.com/files" } },
      forward_auth: { trusted_proxies: ["127.0.0.1/32"] },
    }),
  );
  pdp = await startPdp({
    env: { PDP_CONFIG: config, PDP_BUNDLE: bundle, PDP_ENTRYPOINT: "acme/mcp/decision" },
  });
});

after(async () => {
  await pdp.close();
  scratch.remove();
});

/** Envoy ext_authz with the body: the status forward-auth answers for a call of `tool`. */
async function forwardAuth(tool: string) {
  return postJson(
    `${pdp.url}/forward-auth/files/mcp`,
    { jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: tool, arguments: {} } },
    { "x-forwarded-for": "10.1.2.3" },
  );
}

async function forwardAuthStatus(tool: string): Promise<number> {
  return (await forwardAuth(tool)).status;
}

describe("attack: an allow on condition of an obligation forward-auth cannot perform", () => {
  test("control: an allow without obligations passes, a deny does not", async () => {
    assert.equal(await forwardAuthStatus("read_file"), 200);
    assert.equal(await forwardAuthStatus("delete_repo"), 403);
  });

  test("the AuthZEN API tells a PEP about the obligation", async () => {
    const answer = await postJson(`${pdp.url}/access/v1/evaluation`, {
      subject: { type: "user", id: "alice" },
      action: { name: "tools/call" },
      resource: { type: "tool", id: "files/export_records" },
      context: { supported_obligations: ["custom"] },
    });
    const body = answer.body as { decision: boolean; context: { obligations: unknown } };
    assert.equal(body.decision, true);
    assert.deepEqual(body.context.obligations, [
      { type: "custom", id: "redact", properties: { fields: ["ssn"] } },
    ]);
  });

  test("forward-auth refuses an allow whose obligation (redact) it cannot perform, and records the deny", async () => {
    // It read only step_up and answered 200: the records went out unredacted.
    const answer = await forwardAuth("export_records");
    assert.equal(answer.status, 403);
    const body = answer.body as { error: { code: number; data: { reasons: string[] } } };
    assert.equal(body.error.code, -32003);
    assert.deepEqual(body.error.data.reasons, ["obligation_unsupported"]);
    const record = pdp.decisions.at(-1);
    assert.equal(record?.outcome, "deny");
  });
});

describe("attack: the same allow read by the PEP library's PDP client", () => {
  test("the PEP library reads an allow it cannot honour (redact) as a deny", async () => {
    const [decision] = await evaluate(
      {
        evaluationsUrl: `${pdp.url}/access/v1/evaluations`,
        apiKey: undefined,
        timeoutMs: 5000,
        maxEvaluationsPerCall: 64,
        fetch: globalThis.fetch,
      },
      { subject: { type: "user", id: "alice" }, context: {} },
      [
        {
          action: { name: "tools/call" },
          resource: { type: "tool", id: "export_records", properties: { server: "files" } },
        },
      ],
    );
    // It read only step_up: allow true, and the middleware called next().
    assert.ok(decision);
    assert.equal(decision.allow, false);
    assert.deepEqual(
      decision.reasons.map((reason) => reason.code),
      ["obligation_unsupported"],
    );
  });
});
