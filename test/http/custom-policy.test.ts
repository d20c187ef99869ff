/**
 * Operators may bring their own Rego: a small non-MCP policy is compiled by the
 * real opa CLI and served through PDP_BUNDLE / PDP_ENTRYPOINT.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { postJson, startPdp, type RunningPdp } from "../support/pdp.ts";
import { buildWasmBundle, scratchDir } from "../support/opa.ts";

const documentsPolicy = `package documents

# Owners may do anything with their documents; others may only read public ones.
default allow := false

allow if input.resource.properties.owner == input.subject.id

allow if {
	input.action.name == "read"
	input.resource.properties.public == true
}

decision := {
	"allow": allow,
	"reasons": [r | some r in reasons],
	"obligations": {"echo": input},
}

reasons contains {"code": "not_owner", "admin": "subject is not the owner", "user": "Not yours."} if not allow

broken := {"allow": "yes"}

maybe if input.subject.id == "nobody"
`;

const frozenMs = Date.UTC(2026, 10, 26, 9, 30, 0);

function request(
  subjectId: string,
  action: string,
  owner: string,
  extra: Record<string, unknown> = {},
) {
  return {
    subject: { type: "user", id: subjectId, properties: { department: "sales" } },
    action: { name: action },
    resource: { type: "document", id: "doc-1", properties: { owner, public: false } },
    context: { channel: "web" },
    ...extra,
  };
}

describe("a custom, non-MCP policy", () => {
  const scratch = scratchDir();
  let bundle = "";
  const running: RunningPdp[] = [];
  const start = async (entrypoint: string) => {
    const pdp = await startPdp({
      env: { PDP_BUNDLE: bundle, PDP_ENTRYPOINT: entrypoint },
      clock: () => frozenMs,
    });
    running.push(pdp);
    return pdp;
  };

  before(() => {
    bundle = buildWasmBundle(scratch.dir, { "documents.rego": documentsPolicy }, [
      "documents/allow",
      "documents/decision",
      "documents/broken",
      "documents/maybe",
    ]);
  });
  after(async () => {
    await Promise.all(running.map((pdp) => pdp.close()));
    scratch.remove();
  });

  test("a boolean entrypoint decides, with policy_denied as the reason for false", async () => {
    const pdp = await start("documents/allow");
    const allowed = await postJson(
      `${pdp.url}/access/v1/evaluation`,
      request("ann", "delete", "ann"),
    );
    assert.deepEqual((allowed.body as { decision: boolean }).decision, true);
    const denied = await postJson(
      `${pdp.url}/access/v1/evaluation`,
      request("bob", "delete", "ann"),
    );
    const body = denied.body as { decision: boolean; context: { reasons: { code: string }[] } };
    assert.equal(body.decision, false);
    assert.deepEqual(
      body.context.reasons.map((r) => r.code),
      ["policy_denied"],
    );
  });

  test("a document entrypoint passes its reasons and obligations through", async () => {
    const pdp = await start("documents/decision");
    const denied = await postJson(
      `${pdp.url}/access/v1/evaluation`,
      request("bob", "write", "ann"),
    );
    const body = denied.body as {
      decision: boolean;
      context: { reasons: { code: string; user: string }[]; reason_user: { en: string } };
    };
    assert.equal(body.decision, false);
    assert.deepEqual(
      body.context.reasons.map((r) => r.code),
      ["not_owner"],
    );
    assert.equal(body.context.reason_user.en, "Not yours.");
  });

  test("the AuthZEN request reaches the policy unchanged apart from the PDP's additions", async () => {
    const pdp = await start("documents/decision");
    const sent = request("ann", "read", "ann");
    const response = await postJson(`${pdp.url}/access/v1/evaluation`, sent);
    const echoed = (
      response.body as { context: { obligations: { echo: Record<string, unknown> } } }
    ).context.obligations.echo;
    assert.deepEqual(echoed, {
      subject: {
        ...sent.subject,
        properties: { ...sent.subject.properties, authenticated: true, authentication: "asserted" },
      },
      action: sent.action,
      resource: sent.resource,
      context: {
        channel: "web",
        time: { rfc3339: "2026-11-26T09:30:00Z", unix_s: frozenMs / 1000 },
      },
    });
  });

  test("an undefined decision fails closed with policy_undefined", async () => {
    const pdp = await start("documents/maybe");
    const response = await postJson(
      `${pdp.url}/access/v1/evaluation`,
      request("ann", "read", "ann"),
    );
    const body = response.body as { decision: boolean; context: { reasons: { code: string }[] } };
    assert.equal(body.decision, false);
    assert.deepEqual(
      body.context.reasons.map((r) => r.code),
      ["policy_undefined"],
    );
  });

  test("an answer that is not a decision fails closed with policy_result_invalid", async () => {
    const pdp = await start("documents/broken");
    const response = await postJson(
      `${pdp.url}/access/v1/evaluation`,
      request("ann", "read", "ann"),
    );
    const body = response.body as { decision: boolean; context: { reasons: { code: string }[] } };
    assert.equal(response.status, 200);
    assert.equal(body.decision, false);
    assert.deepEqual(
      body.context.reasons.map((r) => r.code),
      ["policy_result_invalid"],
    );
    assert.ok(
      pdp.logs.some(
        (line) =>
          line.message === "decision failed closed" && line.reason === "policy_result_invalid",
      ),
      "the failure is logged",
    );
  });
});
