/**
 * Shadow evaluation: a candidate policy evaluated on the same inputs as the
 * active one, on real HTTP, never changing an answer; disagreements in the
 * decision record and mcp_pdp_shadow_decisions_total; sampling and the time
 * budget on the evaluator itself.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { embeddedBundlePath } from "../../src/config/index.ts";
import { ShadowEvaluator } from "../../src/decision/shadow-evaluator.ts";
import { loadActivePolicy } from "../../src/policy/policy-loader.ts";
import { postJson, startPdp, type RunningPdp } from "../support/pdp.ts";
import { scratchDir } from "../support/opa.ts";
import { parseExposition, total } from "../observability/helpers.ts";

const scratch = scratchDir();
const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const close of closers) await close();
  scratch.remove();
});

function file(name: string, text: string): string {
  const path = join(scratch.dir, name);
  writeFileSync(path, text);
  return path;
}

const allowing = file("allowing.yaml", "unknown_tool: read\n");
/** Denies unknown tools, but catalogues files/read_file as a read: there it agrees with `allowing`. */
const denying = file("denying.yaml", 'unknown_tool: deny\ntools: {"files/read_file": read}\n');

async function start(shadow: Record<string, unknown>): Promise<RunningPdp> {
  const config = file(
    `config-${closers.length}.json`,
    JSON.stringify({ policy: { data: allowing, watch: false, shadow } }),
  );
  const pdp = await startPdp({ env: { PDP_CONFIG: config } });
  closers.push(() => pdp.close());
  return pdp;
}

const call = (tool: string) => ({
  subject: {
    type: "user",
    id: "alice",
    properties: { scopes: ["mcp:read"], auth_time: Math.floor(Date.now() / 1000) - 300 },
  },
  action: { name: "tools/call" },
  resource: { type: "tool", id: tool },
  context: { device: { trust: "compliant" } },
});
async function decide(pdp: RunningPdp, tool: string): Promise<boolean> {
  const answer = await postJson(`${pdp.url}/access/v1/evaluation`, call(tool));
  assert.equal(answer.status, 200);
  return (answer.body as { decision: boolean }).decision;
}

async function shadowCount(pdp: RunningPdp, result: string): Promise<number> {
  const text = await (await fetch(`${pdp.url}/metrics`)).text();
  return total(parseExposition(text), "mcp_pdp_shadow_decisions_total", { result });
}

describe("policy.shadow over HTTP", () => {
  test("a disagreeing candidate never changes the answer; the record and the counter say so", async () => {
    const pdp = await start({ data: denying, sample_rate: 1 });
    // An unknown tool: the active data allows it as a read, the candidate denies it.
    assert.equal(await decide(pdp, "files/frobnicate"), true);
    const record = pdp.decisions.at(-1);
    const shadow = record?.shadow as {
      result: string;
      revision: string;
      decision: boolean;
      reasons: string[];
    };
    assert.equal(record?.outcome, "allow");
    assert.equal(shadow.result, "disagree");
    assert.equal(shadow.decision, false);
    assert.ok(shadow.reasons.length > 0, JSON.stringify(shadow));
    assert.match(shadow.revision, /\+data\./);
    assert.notEqual(shadow.revision, record.revision);
    // A read both policies allow: agree.
    assert.equal(await decide(pdp, "files/read_file"), true);
    const agreeing = pdp.decisions.at(-1)?.shadow as { result: string } | undefined;
    assert.equal(agreeing?.result, "agree");
    assert.equal(await shadowCount(pdp, "disagree"), 1);
    assert.equal(await shadowCount(pdp, "agree"), 1);
    const loaded = pdp.logs.find((l) => l.message === "shadow policy loaded");
    assert.equal(loaded?.revision, shadow.revision);
  });

  test("sample_rate 0: nothing is shadowed, no record field, the counters stay 0", async () => {
    const pdp = await start({ data: denying, sample_rate: 0 });
    assert.equal(await decide(pdp, "files/frobnicate"), true);
    assert.equal(pdp.decisions.at(-1)?.shadow, undefined);
    for (const result of ["agree", "disagree", "error", "skipped"]) {
      assert.equal(await shadowCount(pdp, result), 0);
    }
  });

  test("a shadow that cannot load refuses the start, naming it", async () => {
    const broken = file("broken.yaml", "unknown_tool: destrutive\n");
    await assert.rejects(start({ data: broken }), /policy_config_invalid.*destrutive/);
  });
});

describe("ShadowEvaluator", () => {
  const input = call("files/frobnicate");

  test("samples by the rate, and skips once the second's time budget is spent", async () => {
    const candidate = await loadActivePolicy({
      bundlePath: embeddedBundlePath,
      dataPath: denying,
      entrypoint: "mcp/authz/decision",
      configCheck: undefined,
    });
    const draws = [0.2, 0.7];
    const halves = new ShadowEvaluator(candidate, {
      sampleRate: 0.5,
      random: () => draws.shift() ?? 1,
    });
    const decision = { allow: true, reasons: [] };
    assert.equal(halves.compare(input, decision)?.result, "disagree");
    assert.equal(halves.compare(input, decision), undefined);

    const broke = new ShadowEvaluator(candidate, { sampleRate: 1, budgetShare: 0 });
    assert.deepEqual(broke.compare(input, decision), {
      result: "skipped",
      revision: candidate.revision,
    });

    // A budget of 1 ms a second: the first evaluation runs, and within the same second the
    // ones after it are skipped once a millisecond has been spent.
    const tight = new ShadowEvaluator(candidate, { sampleRate: 1, budgetShare: 0.001 });
    const results = Array.from({ length: 200 }, () => tight.compare(input, decision)?.result);
    assert.equal(results[0], "disagree");
    assert.ok(results.includes("skipped"), results.join(","));
  });
});
