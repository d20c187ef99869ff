/**
 * The exposition passes Prometheus's own linter: `promtool check metrics`
 * (Debian's prometheus package; .ci/run installs it) reads GET /metrics of a
 * running PDP, after decisions of every kind, on stdin. A missing promtool
 * is a failure, not a skip.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { after, before, test } from "node:test";
import { postJson, startPdp, type RunningPdp } from "../support/pdp.ts";
import {
  declaredFamilies,
  familyOf,
  operatorData,
  parseExposition,
  rawRequest,
} from "./helpers.ts";

let pdp: RunningPdp;
let exposition = "";

function promtool(input: string): { status: number | null; output: string } {
  const run = spawnSync("promtool", ["check", "metrics"], { input, encoding: "utf8" });
  if (run.error !== undefined) {
    assert.fail(
      `promtool could not be run (${run.error.message}): install Debian's prometheus package`,
    );
  }
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}

before(async () => {
  pdp = await startPdp({
    env: { PDP_DATA: operatorData, PDP_METRICS_TOOL_LABELS: "files/read_file" },
  });
  const subject = { type: "user", id: "alice", properties: { scope: "mcp:read", acr: "mfa" } };
  const context = { ip: "10.1.2.3", device: { trust: "managed" } };
  for (const [tool, action] of [
    ["read_file", "tools/call"],
    ["write_file", "tools/call"],
    ["delete_repo", "tools/call"],
    ["read_file", "foo/bar"],
  ] as const) {
    const answer = await postJson(`${pdp.url}/access/v1/evaluation`, {
      subject,
      action: { name: action },
      resource: { type: "tool", id: tool, properties: { server: "files" } },
      context,
    });
    assert.equal(answer.status, 200);
  }
  await postJson(`${pdp.url}/access/v1/evaluations`, {
    subject,
    action: { name: "ping" },
    resource: { type: "mcp_server", id: "files" },
    evaluations: [{}, { action: { name: "tools/list" } }],
  });
  await rawRequest(pdp.url, { method: "GET", path: "/forward-auth/files" });
  await rawRequest(pdp.url, { method: "GET", path: "/nope" });
  await fetch(`${pdp.url}/metrics`);
  const response = await fetch(`${pdp.url}/metrics`);
  assert.equal(response.status, 200);
  exposition = await response.text();
});

after(async () => {
  await pdp.close();
});

test("promtool check metrics accepts the whole exposition", () => {
  const { status, output } = promtool(exposition);
  assert.equal(status, 0, `promtool check metrics failed (exit ${status}):\n${output}`);
});

test("promtool check metrics accepts the PDP's own families (process metrics left out)", () => {
  const parsed = parseExposition(exposition);
  const own = new Set(declaredFamilies());
  const lines = exposition.split("\n").filter((line) => {
    const meta = /^# (?:HELP|TYPE) (\S+)/.exec(line);
    if (meta !== null) return own.has(meta[1] ?? "");
    const name = /^([A-Za-z_:][A-Za-z0-9_:]*)/.exec(line)?.[1];
    return name === undefined || own.has(familyOf(parsed, name));
  });
  const text = lines.join("\n");
  for (const family of own) assert.ok(text.includes(`# TYPE ${family} `), family);
  const { status, output } = promtool(text);
  assert.equal(status, 0, `promtool check metrics failed (exit ${status}):\n${output}`);
});
