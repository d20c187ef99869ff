/**
 * Live policy with real parts: the PDP serving on loopback while its
 * operator data file changes on disk (the directory watch), is reloaded by
 * the admin API, or is edited badly (last known good kept, reported in the
 * log, /v1/status and the failures counter); and 100 reloads under a
 * client loop with no failed request and every record's revision
 * consistent with its answer.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { postJson, startPdp, type RunningPdp } from "../support/pdp.ts";
import { scratchDir } from "../support/opa.ts";
import { parseExposition, sha256Hex, total, waitFor } from "../observability/helpers.ts";

const scratch = scratchDir();
after(() => {
  scratch.remove();
});

/** Under `allowing` an unknown tool is a read (allowed for a reader); under `denying` it is denied. */
const allowing = "unknown_tool: read\n";
const denying = "unknown_tool: deny\n";

const keys = {
  ops: randomBytes(24).toString("base64url"),
  pep: randomBytes(24).toString("base64url"),
};
const ops = { "x-api-key": keys.ops };
const pep = { "x-api-key": keys.pep };
const lockedDown = {
  callers: [
    {
      name: "pep",
      api_key_sha256: [sha256Hex(keys.pep)],
      permissions: ["authzen"],
      assert_subject: true,
    },
  ],
  ops: { api_key_sha256: [sha256Hex(keys.ops)] },
};

let fileCount = 0;
function scratchFile(name: string, text: string): string {
  fileCount += 1;
  const path = join(scratch.dir, `${fileCount}-${name}`);
  writeFileSync(path, text);
  return path;
}

/** Replaces a file the way many editors save: a new file renamed over the old one. */
function saveByRename(path: string, text: string): void {
  const temporary = `${path}.tmp-${fileCount++}`;
  writeFileSync(temporary, text);
  renameSync(temporary, path);
}

async function start(data: string, env: Record<string, string> = {}): Promise<RunningPdp> {
  return startPdp({
    env: {
      PDP_DATA: data,
      PDP_CONFIG: scratchFile("config.json", JSON.stringify(lockedDown)),
      ...env,
    },
  });
}

const unknownToolCall = () => ({
  subject: {
    type: "user",
    id: "alice",
    properties: { scopes: ["mcp:read"], auth_time: Math.floor(Date.now() / 1000) - 300 },
  },
  action: { name: "tools/call" },
  resource: { type: "tool", id: "files/frobnicate" },
  context: { device: { trust: "compliant" } },
});

async function allowed(pdp: RunningPdp): Promise<boolean> {
  const answer = await postJson(`${pdp.url}/access/v1/evaluation`, unknownToolCall(), pep);
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  return (answer.body as { decision: boolean }).decision;
}

async function readyRevision(pdp: RunningPdp): Promise<string> {
  const response = await fetch(`${pdp.url}/ready`, { headers: ops });
  assert.equal(response.status, 200);
  return ((await response.json()) as { revision: string }).revision;
}

async function status(pdp: RunningPdp): Promise<{
  revision: string;
  bundles: { local: Record<string, unknown> };
}> {
  const response = await fetch(`${pdp.url}/v1/status`, { headers: ops });
  assert.equal(response.status, 200);
  return (await response.json()) as {
    revision: string;
    bundles: { local: Record<string, unknown> };
  };
}

async function failures(pdp: RunningPdp, reason: string): Promise<number> {
  const response = await fetch(`${pdp.url}/metrics`, { headers: ops });
  const exposition = parseExposition(await response.text());
  return total(exposition, "mcp_pdp_bundle_load_failures_total", { source: "local", reason });
}

function reload(pdp: RunningPdp, headers: Record<string, string> = ops) {
  return postJson(`${pdp.url}/v1/policy/reload`, "", headers);
}

describe("PDP_DATA watched on disk", () => {
  let pdp: RunningPdp;
  let data: string;
  before(async () => {
    data = scratchFile("watched.yaml", allowing);
    pdp = await start(data);
  });
  after(async () => {
    await pdp.close();
  });

  test("an edit saved by rename changes decisions without a restart; records name the new revision", async () => {
    assert.equal(await allowed(pdp), true);
    const first = await readyRevision(pdp);
    saveByRename(data, denying);
    const second = await waitFor(
      "the watched edit to be activated",
      async () => {
        const revision = await readyRevision(pdp);
        return revision === first ? undefined : revision;
      },
      5000,
      () => JSON.stringify(pdp.logs.slice(-5)),
    );
    assert.match(second, /^sha256-[0-9a-f]{16}\+data\.[0-9a-f]{12}$/);
    assert.equal(await allowed(pdp), false);
    assert.equal(pdp.decisions.at(-1)?.revision, second);
    const line = pdp.logs.find((l) => l.message === "policy activated");
    assert.deepEqual(
      {
        trigger: line?.trigger,
        source: line?.source,
        revision: line?.revision,
        previous: line?.previous,
      },
      { trigger: "watch", source: "local", revision: second, previous: first },
    );
  });

  for (const [what, text, code] of [
    ["a YAML error", "unknown_tool: [read\n", "data_invalid"],
    [
      "data the policy's config_errors rejects",
      "unknown_tool: destrutive\n",
      "policy_config_invalid",
    ],
  ] as const) {
    test(`a bad edit (${what}) changes nothing and is reported in the log, status and counter`, async () => {
      const revision = await readyRevision(pdp);
      const decision = await allowed(pdp);
      const counted = await failures(pdp, code);
      const refusals = pdp.logs.filter(
        (l) => l.message === "policy refused, the active one kept",
      ).length;
      saveByRename(data, text);
      const refusal = await waitFor(
        "the refusal to be logged",
        () => {
          const lines = pdp.logs.filter((l) => l.message === "policy refused, the active one kept");
          return lines.length > refusals ? lines.at(-1) : undefined;
        },
        5000,
      );
      assert.equal(refusal.reason, code);
      assert.equal(refusal.revision, revision);
      assert.equal(refusal.trigger, "watch");
      assert.equal(await readyRevision(pdp), revision);
      assert.equal(await allowed(pdp), decision);
      assert.equal(await failures(pdp, code), counted + 1);
      const local = (await status(pdp)).bundles.local;
      assert.equal(local.code, code);
      assert.equal(local.active_revision, revision);
      assert.match(String(local.message), /PDP_DATA/);
    });
  }

  test("a good edit after a bad one activates and clears the status error", async () => {
    saveByRename(data, allowing);
    await waitFor(
      "the repaired file to be activated",
      async () => ((await allowed(pdp)) ? true : undefined),
      5000,
    );
    const local = (await status(pdp)).bundles.local;
    assert.equal(local.code, undefined);
    assert.equal(local.active_revision, await readyRevision(pdp));
  });
});

describe("POST /v1/policy/reload", () => {
  let pdp: RunningPdp;
  let data: string;
  before(async () => {
    data = scratchFile("admin.yaml", allowing);
    // Without the watch, only the admin API reads the file again.
    pdp = await start(data, { PDP_POLICY_WATCH: "false" });
  });
  after(async () => {
    await pdp.close();
  });

  test("needs the ops permission: 401 without a key, 403 for a decision caller", async () => {
    assert.equal((await reload(pdp, {})).status, 401);
    assert.equal((await reload(pdp, pep)).status, 403);
  });

  test("200 activated with the new revision, 200 unchanged for the same files, 422 refused with the reason", async () => {
    const first = await readyRevision(pdp);
    const same = await reload(pdp);
    assert.equal(same.status, 200);
    assert.deepEqual(same.body, { result: "unchanged", source: "local", revision: first });

    writeFileSync(data, denying);
    const changed = await reload(pdp);
    assert.equal(changed.status, 200);
    const body = changed.body as { result: string; revision: string; previous: string };
    assert.equal(body.result, "activated");
    assert.equal(body.previous, first);
    assert.equal(await readyRevision(pdp), body.revision);
    assert.equal(await allowed(pdp), false);

    writeFileSync(data, "unknown_tool: destrutive\n");
    const refused = await reload(pdp);
    assert.equal(refused.status, 422);
    const reason = refused.body as { code: string; message: string; revision: string };
    assert.equal(reason.code, "policy_config_invalid");
    assert.match(reason.message, /destrutive/);
    assert.equal(reason.revision, body.revision);
    assert.equal(await allowed(pdp), false);
  });
});

describe("reload requests in a burst", () => {
  let pdp: RunningPdp;
  before(async () => {
    pdp = await start(scratchFile("burst.yaml", allowing), { PDP_POLICY_WATCH: "false" });
  });
  after(async () => {
    await pdp.close();
  });

  test("share the reload waiting its turn: at most one runs and one waits, however many ask", async () => {
    // Without sharing, each of 200 requests would queue a full load (bundle, wasm, config_errors).
    const unchangedLines = () => pdp.logs.filter((l) => l.message === "policy unchanged").length;
    const before = unchangedLines();
    const asked = Array.from({ length: 200 }, () => pdp.app.reloadPolicy("admin"));
    for (const outcome of await Promise.all(asked)) assert.equal(outcome.result, "unchanged");
    // One log line per load that ran: the candidate read, checked and found unchanged.
    const loads = unchangedLines() - before;
    assert.ok(loads >= 1 && loads <= 2, `${loads} loads for 200 requests`);
  });
});

describe("100 reloads under load", () => {
  test("no failed request; every record names one of the two revisions, and its answer is that revision's", async (t) => {
    const data = scratchFile("storm.yaml", allowing);
    const pdp = await start(data, { PDP_POLICY_WATCH: "false" });
    try {
      const revisionOf = new Map<string, boolean>();
      revisionOf.set(await readyRevision(pdp), true);
      let stop = false;
      let requests = 0;
      let failed = 0;
      const client = async () => {
        while (!stop) {
          requests += 1;
          try {
            const one = await postJson(`${pdp.url}/access/v1/evaluation`, unknownToolCall(), pep);
            if (one.status !== 200) failed += 1;
            // A batch of 8 that yields between items: all of them on one revision.
            const { subject, action, context } = unknownToolCall();
            const many = await postJson(
              `${pdp.url}/access/v1/evaluations`,
              {
                subject,
                action,
                context,
                options: { include_context: true },
                evaluations: Array.from({ length: 8 }, () => ({
                  resource: { type: "tool", id: "files/frobnicate" },
                })),
              },
              pep,
            );
            if (many.status !== 200) failed += 1;
          } catch {
            failed += 1;
          }
        }
      };
      const clients = [client(), client(), client()];
      const outcomes: string[] = [];
      const reloadMs: number[] = [];
      for (let i = 0; i < 100; i += 1) {
        writeFileSync(data, i % 2 === 0 ? denying : allowing);
        const startedMs = performance.now();
        const answer = await reload(pdp);
        reloadMs.push(performance.now() - startedMs);
        assert.equal(answer.status, 200, JSON.stringify(answer.body));
        const outcome = answer.body as { result: string; revision: string };
        assert.equal(outcome.result, "activated");
        revisionOf.set(outcome.revision, i % 2 === 1);
        outcomes.push(outcome.revision);
      }
      stop = true;
      await Promise.all(clients);
      reloadMs.sort((a, b) => a - b);
      t.diagnostic(
        `${requests} client rounds (1 evaluation + a batch of 8), ${pdp.decisions.length} records; reload (read, load, check, activate) under load: p50 ${reloadMs[49]?.toFixed(1)} ms, max ${reloadMs[99]?.toFixed(1)} ms`,
      );
      assert.equal(failed, 0);
      assert.ok(requests > 50, `only ${requests} client rounds`);
      // Two files, two revisions, alternating in the reload sequence.
      assert.equal(revisionOf.size, 2);
      outcomes.forEach((revision, i) => {
        assert.equal(revision, outcomes[i % 2]);
      });
      const batches = new Map<string, Set<string>>();
      for (const record of pdp.decisions) {
        const revision = String(record.revision);
        assert.ok(revisionOf.has(revision), `unknown revision ${revision}`);
        assert.equal(record.outcome === "allow", revisionOf.get(revision), JSON.stringify(record));
        if (record.endpoint === "evaluations") {
          const id = String(record.req_id);
          batches.set(id, (batches.get(id) ?? new Set()).add(revision));
        }
      }
      assert.ok(pdp.decisions.length >= requests, `${pdp.decisions.length} records`);
      for (const [id, revisions] of batches) assert.equal(revisions.size, 1, `batch ${id}`);
      const seen = new Set(pdp.decisions.map((r) => r.revision));
      assert.equal(seen.size, 2, "the client saw both revisions");
    } finally {
      await pdp.close();
    }
  });
});
