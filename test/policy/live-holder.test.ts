/**
 * The policy holder on real loaded policies: one value swapped whole, a
 * pinned engine keeps the revision it started with, a refused candidate
 * keeps the active one, an equal digest is no activation, attempts run in
 * the order asked, and the sources' times come from the injected clock.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { embeddedBundlePath } from "../../src/config/index.ts";
import { PolicyDecisionEngine } from "../../src/decision/decision-engine.ts";
import type { AccessRequest } from "../../src/decision/decision.ts";
import { StartupError } from "../../src/errors.ts";
import { PolicyHolder, type ActivationOutcome } from "../../src/policy/policy-holder.ts";
import {
  loadActivePolicy,
  type ActivePolicy,
  type PolicySource,
} from "../../src/policy/policy-loader.ts";
import { scratchDir } from "../support/opa.ts";

const scratch = scratchDir();
after(() => {
  scratch.remove();
});

function source(dataPath: string | undefined): PolicySource {
  return {
    bundlePath: embeddedBundlePath,
    dataPath,
    entrypoint: "mcp/authz/decision",
    configCheck: { entrypoint: "mcp/authz/config_errors", required: false },
  };
}

const nowMs = Date.UTC(2026, 2, 10, 12);
/** The decision input as the API layer hands it over (subject already resolved). */
const unknownToolCall = {
  subject: {
    type: "user",
    id: "alice",
    properties: { authenticated: true, scopes: ["mcp:read"], auth_time: nowMs / 1000 - 300 },
  },
  action: { name: "tools/call" },
  resource: { type: "tool", id: "files/frobnicate" },
  context: { device: { trust: "compliant" } },
} as unknown as AccessRequest;

describe("PolicyHolder", () => {
  let allowing: ActivePolicy;
  let denying: ActivePolicy;
  let plain: ActivePolicy;
  before(async () => {
    const a = join(scratch.dir, "a.yaml");
    const b = join(scratch.dir, "b.yaml");
    writeFileSync(a, "unknown_tool: read\n");
    writeFileSync(b, "unknown_tool: deny\n");
    allowing = await loadActivePolicy(source(a));
    denying = await loadActivePolicy(source(b));
    plain = await loadActivePolicy(source(undefined));
  });

  test("the revision is the bundle's plus the data digest; the same files give the same digest", async () => {
    assert.match(plain.revision, /^sha256-[0-9a-f]{16}$/);
    assert.equal(allowing.revision.split("+")[0], plain.revision);
    assert.match(allowing.revision, /\+data\.[0-9a-f]{12}$/);
    assert.notEqual(allowing.revision, denying.revision);
    const again = await loadActivePolicy(source(allowing.dataPath));
    assert.equal(again.digest, allowing.digest);
    assert.equal(again.revision, allowing.revision);
  });

  test("a pinned engine decides on the policy it was pinned to; the engine on the one active now", async () => {
    const holder = new PolicyHolder(allowing, "local", () => nowMs);
    const engine = new PolicyDecisionEngine(holder);
    const pinned = engine.pinned();
    assert.equal(engine.decide(unknownToolCall, nowMs).allow, true);
    const outcome = await holder.activateCandidate(
      "local",
      () => Promise.resolve(denying),
      "admin",
    );
    assert.equal(outcome.result, "activated");
    const before = pinned.decide(unknownToolCall, nowMs);
    const now = engine.decide(unknownToolCall, nowMs);
    assert.deepEqual([before.allow, before.revision], [true, allowing.revision]);
    assert.deepEqual([now.allow, now.revision], [false, denying.revision]);
    assert.equal(pinned.revision, allowing.revision);
    assert.equal(engine.revision, denying.revision);
  });

  test("refused keeps the active policy and records the error; an equal digest is unchanged", async () => {
    let clock = nowMs;
    const holder = new PolicyHolder(allowing, "local", () => clock);
    const told: ActivationOutcome[] = [];
    holder.onActivation((outcome) => {
      told.push(outcome);
    });
    clock += 1000;
    const refused = await holder.activateCandidate(
      "local",
      () => Promise.reject(new StartupError("data_invalid", ["PDP_DATA x: bad"])),
      "watch",
    );
    assert.deepEqual(refused, {
      result: "refused",
      source: "local",
      revision: allowing.revision,
      code: "data_invalid",
      message: "data_invalid: PDP_DATA x: bad",
    });
    assert.equal(holder.current(), allowing);
    const status = holder.status().sources.local;
    assert.deepEqual(status?.lastError, {
      code: "data_invalid",
      message: "data_invalid: PDP_DATA x: bad",
    });
    assert.equal(status.lastRequestMs, nowMs + 1000);
    assert.equal(status.lastSuccessfulRequestMs, nowMs);
    assert.equal(holder.successAges().get("local"), 1000);

    const thrown = await holder.activateCandidate(
      "local",
      () => Promise.reject(new Error("boom")),
      "admin",
    );
    assert.equal(thrown.result === "refused" && thrown.code, "load_failed");

    clock += 1000;
    const twin = await loadActivePolicy(source(allowing.dataPath));
    const unchanged = await holder.activateCandidate(
      "local",
      () => Promise.resolve(twin),
      "signal",
    );
    assert.deepEqual(unchanged, {
      result: "unchanged",
      source: "local",
      revision: allowing.revision,
    });
    assert.equal(holder.current(), allowing, "the same policy is not replaced by its twin");
    assert.equal(holder.activatedAt, nowMs);
    assert.equal(holder.status().sources.local?.lastError, undefined);
    assert.equal(holder.successAges().get("local"), 0);
    assert.deepEqual(
      told.map((o) => o.result),
      ["refused", "refused", "unchanged"],
    );
  });

  test("attempts run one at a time in the order asked: the last asked is the one active", async () => {
    const holder = new PolicyHolder(plain, "local", () => nowMs);
    const slow = new Promise<ActivePolicy>((resolve) => {
      setTimeout(() => {
        resolve(denying);
      }, 50);
    });
    const first = holder.activateCandidate("local", () => slow, "watch");
    const second = holder.activateCandidate("local", () => Promise.resolve(allowing), "admin");
    assert.equal((await first).result, "activated");
    const last = await second;
    assert.deepEqual(last, {
      result: "activated",
      source: "local",
      revision: allowing.revision,
      previous: denying.revision,
    });
    assert.equal(holder.current(), allowing);
  });

  test("a listener that throws does not stop later attempts", async () => {
    const holder = new PolicyHolder(plain, "local", () => nowMs);
    let bugs = 1;
    holder.onActivation(() => {
      if (bugs-- > 0) throw new Error("listener bug");
    });
    await assert.rejects(
      holder.activateCandidate("local", () => Promise.resolve(denying), "admin"),
    );
    const next = await holder.activateCandidate("local", () => Promise.resolve(allowing), "admin");
    assert.equal(next.result, "activated");
  });
});
