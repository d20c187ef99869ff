/**
 * The AuthZEN obligations profile beside the PDP's own obligations shape: the
 * mapping (one profile obligation per entry of the policy's answer, nothing
 * dropped) and, over real HTTP with the default policy, the opt-in through
 * `context.supported_obligations` on single and batch evaluations.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  profileObligationsOf,
  wantsObligationsProfile,
} from "../../src/api/authzen-obligations.ts";
import type { Decision } from "../../src/decision/decision.ts";
import { readPolicyAnswer } from "../../src/decision/result-reader.ts";
import { buildWasmBundle, scratchDir } from "../support/opa.ts";
import { postJson, startPdp, type RunningPdp } from "../support/pdp.ts";

/** A decision as the engine builds it from a policy answer. */
function decisionWith(obligations: Record<string, unknown>, allow = false): Decision {
  const answer = readPolicyAnswer({ allow, obligations });
  return { ...answer, id: "d-1", revision: "r-1" } as Decision;
}

describe("the profile's obligations of a decision", () => {
  test("a step-up with acr_values is a step-up obligation; the whole step-up stays beside acr_value", () => {
    const step_up = { scopes: ["mcp:admin"], acr_values: ["mfa", "hwk"], max_age: 600 };
    assert.deepEqual(profileObligationsOf(decisionWith({ step_up })), [
      { type: "step-up", id: "step_up", properties: { ...step_up, acr_value: "mfa" } },
    ]);
  });

  test("a step-up without an acr does not fit the profile (acr_value is required): a custom obligation", () => {
    for (const step_up of [{ scopes: ["mcp:write"] }, { max_age: 86400 }, { acr_values: [] }]) {
      assert.deepEqual(profileObligationsOf(decisionWith({ step_up })), [
        { type: "custom", id: "step_up", properties: step_up },
      ]);
    }
  });

  test("every other obligation of the policy is a custom one, none is dropped; null asks for nothing", () => {
    const obligations = { notify: { to: "soc" }, watermark: true, step_up: null };
    assert.deepEqual(profileObligationsOf(decisionWith(obligations, true)), [
      { type: "custom", id: "notify", properties: { to: "soc" } },
      { type: "custom", id: "watermark", properties: { value: true } },
    ]);
    assert.deepEqual(profileObligationsOf(decisionWith({}, true)), []);
  });

  test("a policy's own acr_value cannot replace the one read from acr_values", () => {
    const step_up = { acr_values: ["mfa"], acr_value: "none" };
    const [obligation] = profileObligationsOf(decisionWith({ step_up }));
    assert.equal(obligation?.properties.acr_value, "mfa");
  });

  test("a request opts in by naming an advertised type; other values are ignored", () => {
    assert.equal(wantsObligationsProfile({ supported_obligations: ["step-up"] }), true);
    assert.equal(
      wantsObligationsProfile({ supported_obligations: ["notification", "custom"] }),
      true,
    );
    assert.equal(wantsObligationsProfile({ supported_obligations: ["notification"] }), false);
    assert.equal(wantsObligationsProfile({ supported_obligations: [] }), false);
    assert.equal(wantsObligationsProfile({ supported_obligations: "step-up" }), false);
    assert.equal(wantsObligationsProfile({}), false);
    assert.equal(wantsObligationsProfile(undefined), false);
  });
});

const operatorData = fileURLToPath(new URL("../../examples/operator-data.yaml", import.meta.url));
const tenUtcMs = Date.UTC(2025, 10, 26, 10, 0, 0);
const nowS = tenUtcMs / 1000;

type Json = Record<string, unknown>;
const reader = {
  type: "user",
  id: "alice",
  properties: { scopes: ["mcp:read"], auth_time: nowS - 300 },
};
const staleAdmin = {
  type: "user",
  id: "root",
  properties: { scopes: ["mcp:admin"], acr: "mfa", auth_time: nowS - 2 * 86400 },
};
const toolCall = { name: "tools/call" };
const readFile = { type: "tool", id: "files/read_file" };
const deleteFile = { type: "tool", id: "files/delete_file" };
const profile = { device: { trust: "compliant" }, supported_obligations: ["step-up"] };
const plain = { device: { trust: "compliant" } };
const readerStepUp = {
  type: "step-up",
  id: "step_up",
  properties: { scopes: ["mcp:admin"], acr_values: ["mfa"], acr_value: "mfa" },
};

describe("the obligations profile over HTTP (default policy)", () => {
  let pdp: RunningPdp;
  before(async () => {
    pdp = await startPdp({ env: { PDP_DATA: operatorData }, clock: () => tenUtcMs });
  });
  after(async () => {
    await pdp.close();
  });

  async function evaluate(body: Json): Promise<{ status: number; body: Json }> {
    const response = await postJson(`${pdp.url}/access/v1/evaluation`, body);
    return { status: response.status, body: response.body as Json };
  }
  const contextOf = (body: Json) => body.context as Json;

  test("without the opt-in the answer keeps the PDP's own shape", async () => {
    const { body } = await evaluate({
      subject: reader,
      action: toolCall,
      resource: deleteFile,
      context: plain,
    });
    assert.equal(body.decision, false);
    assert.deepEqual(contextOf(body).obligations, {
      step_up: { scopes: ["mcp:admin"], acr_values: ["mfa"] },
    });
  });

  test("with it, the same denial carries the profile's step-up obligation, and the decision is the same", async () => {
    const { body } = await evaluate({
      subject: reader,
      action: toolCall,
      resource: deleteFile,
      context: profile,
    });
    assert.equal(body.decision, false);
    assert.deepEqual(contextOf(body).obligations, [readerStepUp]);
    const reasons = (contextOf(body).reasons as { code: string }[]).map((r) => r.code);
    assert.deepEqual(reasons, ["acr_insufficient", "scope_missing"]);
  });

  test("a sign-in only too old (the destructive class's 900 s) is a custom obligation; an allow has none", async () => {
    const stale = await evaluate({
      subject: staleAdmin,
      action: toolCall,
      resource: deleteFile,
      context: profile,
    });
    assert.equal(stale.body.decision, false);
    assert.deepEqual(contextOf(stale.body).obligations, [
      { type: "custom", id: "step_up", properties: { max_age: 900 } },
    ]);
    const allowed = await evaluate({
      subject: reader,
      action: toolCall,
      resource: readFile,
      context: profile,
    });
    assert.equal(allowed.body.decision, true);
    assert.deepEqual(contextOf(allowed.body).obligations, []);
  });

  test("batch items without include_context carry the obligations of the items that opted in, and nothing else", async () => {
    const response = await postJson(`${pdp.url}/access/v1/evaluations`, {
      subject: reader,
      action: toolCall,
      context: profile,
      evaluations: [
        { resource: deleteFile },
        { resource: readFile },
        { resource: deleteFile, context: plain },
      ],
    });
    assert.equal(response.status, 200);
    assert.deepEqual((response.body as Json).evaluations, [
      { decision: false, context: { obligations: [readerStepUp] } },
      { decision: true },
      { decision: false },
    ]);
  });

  test("with include_context each item has its whole context in the shape it asked for", async () => {
    const response = await postJson(`${pdp.url}/access/v1/evaluations`, {
      subject: reader,
      action: toolCall,
      resource: deleteFile,
      options: { include_context: true },
      evaluations: [{ context: profile }, { context: plain }],
    });
    const [first, second] = (response.body as { evaluations: Json[] }).evaluations;
    assert.deepEqual(contextOf(first ?? {}).obligations, [readerStepUp]);
    assert.deepEqual(contextOf(second ?? {}).obligations, {
      step_up: { scopes: ["mcp:admin"], acr_values: ["mfa"] },
    });
  });

  test("a malformed supported_obligations is refused with its pointer, never read as an opt-in or not", async () => {
    for (const supported of ["step-up", [1], [{}], Array.from({ length: 17 }, () => "step-up")]) {
      const { status, body } = await evaluate({
        subject: reader,
        action: toolCall,
        resource: deleteFile,
        context: { ...plain, supported_obligations: supported },
      });
      assert.equal(status, 400, JSON.stringify(supported));
      assert.equal(body.code, "invalid_request");
      assert.match(String(body.field), /^\/context\/supported_obligations/);
    }
  });

  test("the metadata advertises the obligation types the PDP issues", async () => {
    const response = await fetch(`${pdp.url}/.well-known/authzen-configuration`);
    const metadata = (await response.json()) as Json;
    assert.deepEqual(metadata.supported_obligations, ["step-up", "custom"]);
  });
});

describe("a custom policy that attaches an obligation to an allow", () => {
  // Owners read their documents, on condition that the PEP watermarks them.
  const policy = `package acme.authz

import rego.v1

allow if data.documents[input.resource.id].owner == input.subject.id

decision := {"allow": allow, "obligations": {"watermark": {"text": input.subject.id}}} if allow

else := {"allow": false}

search_resource contains {"type": "document", "id": id} if some id, _ in data.documents
`;
  const scratch = scratchDir();
  let pdp: RunningPdp;
  const alice = { type: "user", id: "alice" };
  const read = { name: "read" };
  const optIn = { supported_obligations: ["custom"] };
  const watermark = { type: "custom", id: "watermark", properties: { text: "alice" } };

  before(async () => {
    const bundle = buildWasmBundle(scratch.dir, { "p.rego": policy }, [
      "acme/authz/decision",
      "acme/authz/search_resource",
    ]);
    const data = join(scratch.dir, "documents.json");
    writeFileSync(
      data,
      JSON.stringify({ documents: { d1: { owner: "alice" }, d2: { owner: "bob" } } }),
    );
    pdp = await startPdp({
      env: { PDP_BUNDLE: bundle, PDP_ENTRYPOINT: "acme/authz/decision", PDP_DATA: data },
    });
  });
  after(async () => {
    await pdp.close();
    scratch.remove();
  });

  test("an allow carries it as a custom obligation, in a single and a batch answer", async () => {
    const single = await postJson(`${pdp.url}/access/v1/evaluation`, {
      subject: alice,
      action: read,
      resource: { type: "document", id: "d1" },
      context: optIn,
    });
    const body = single.body as { decision: boolean; context: Json };
    assert.equal(body.decision, true);
    assert.deepEqual(body.context.obligations, [watermark]);
    const batch = await postJson(`${pdp.url}/access/v1/evaluations`, {
      subject: alice,
      action: read,
      context: optIn,
      evaluations: [
        { resource: { type: "document", id: "d1" } },
        { resource: { type: "document", id: "d2" } },
      ],
    });
    assert.deepEqual((batch.body as Json).evaluations, [
      { decision: true, context: { obligations: [watermark] } },
      { decision: false },
    ]);
  });

  test("a search result carries the obligations of its decision for a PEP that opted in", async () => {
    const search = (context?: Json) =>
      postJson(`${pdp.url}/access/v1/search/resource`, {
        subject: alice,
        action: read,
        resource: { type: "document" },
        ...(context === undefined ? {} : { context }),
      });
    assert.deepEqual((await search(optIn)).body, {
      results: [{ type: "document", id: "d1", obligations: [watermark] }],
      page: { next_token: "", count: 1 },
    });
    assert.deepEqual((await search()).body, {
      results: [{ type: "document", id: "d1" }],
      page: { next_token: "", count: 1 },
    });
  });
});
