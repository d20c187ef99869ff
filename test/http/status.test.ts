/**
 * GET /v1/status, the staleness gauge and policy.max_staleness_s on the
 * PDP's injected clock: nothing sleeps, the clock is moved.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { postJson, startPdp, type RunningPdp } from "../support/pdp.ts";
import { scratchDir } from "../support/opa.ts";
import { parseExposition, sha256Hex, total } from "../observability/helpers.ts";

const scratch = scratchDir();
const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const close of closers) await close();
  scratch.remove();
});

const opsKey = randomBytes(24).toString("base64url");
const ops = { "x-api-key": opsKey };
const startMs = Date.UTC(2026, 2, 10, 12);

async function start(
  policy: Record<string, unknown>,
): Promise<{ pdp: RunningPdp; clock: { ms: number }; data: string }> {
  const data = join(scratch.dir, `data-${closers.length}.yaml`);
  writeFileSync(data, "unknown_tool: read\n");
  const config = join(scratch.dir, `config-${closers.length}.json`);
  writeFileSync(
    config,
    JSON.stringify({
      ops: { api_key_sha256: [sha256Hex(opsKey)] },
      policy: { watch: false, ...policy },
    }),
  );
  const clock = { ms: startMs };
  const pdp = await startPdp({
    env: { PDP_CONFIG: config, PDP_DATA: data },
    clock: () => clock.ms,
  });
  closers.push(() => pdp.close());
  return { pdp, clock, data };
}

async function get(pdp: RunningPdp, path: string, headers: Record<string, string> = ops) {
  const response = await fetch(`${pdp.url}${path}`, { headers });
  const text = await response.text();
  return {
    status: response.status,
    text,
    body: text.startsWith("{") ? (JSON.parse(text) as Record<string, unknown>) : undefined,
  };
}

describe("GET /v1/status", () => {
  test("ops only; the local source with OPA's status fields, times from the PDP's clock", async () => {
    const { pdp, clock, data } = await start({});
    assert.equal((await get(pdp, "/v1/status", {})).status, 401);
    const first = await get(pdp, "/v1/status");
    assert.equal(first.status, 200);
    const revision = (await get(pdp, "/ready")).body?.revision;
    const at = new Date(startMs).toISOString();
    assert.deepEqual(first.body, {
      revision,
      activated_at: at,
      stale: false,
      // An in-process app: the main thread alone.
      workers: [{ worker: 0, revision }],
      bundles: {
        local: {
          name: "local",
          active_revision: revision,
          last_request: at,
          last_successful_request: at,
          last_successful_download: at,
          last_successful_activation: at,
        },
      },
    });

    clock.ms += 60_000;
    writeFileSync(data, "unknown_tool: destrutive\n");
    assert.equal((await postJson(`${pdp.url}/v1/policy/reload`, "", ops)).status, 422);
    const refused = (await get(pdp, "/v1/status")).body as {
      bundles: { local: Record<string, unknown> };
    };
    assert.equal(refused.bundles.local.last_request, new Date(startMs + 60_000).toISOString());
    assert.equal(refused.bundles.local.last_successful_request, at);
    assert.equal(refused.bundles.local.code, "policy_config_invalid");

    clock.ms += 60_000;
    writeFileSync(data, "unknown_tool: deny\n");
    assert.equal((await postJson(`${pdp.url}/v1/policy/reload`, "", ops)).status, 200);
    const later = new Date(startMs + 120_000).toISOString();
    const activated = (await get(pdp, "/v1/status")).body as {
      revision: string;
      activated_at: string;
      bundles: { local: Record<string, unknown> };
    };
    assert.notEqual(activated.revision, revision);
    assert.equal(activated.activated_at, later);
    assert.equal(activated.bundles.local.last_successful_activation, later);
    assert.equal(activated.bundles.local.code, undefined);
  });
});

describe("staleness", () => {
  test("the age gauge is computed at scrape time; activations and the activation time are metrics", async () => {
    const { pdp, clock, data } = await start({});
    const scrape = async () => parseExposition((await get(pdp, "/metrics")).text);
    assert.equal(
      total(await scrape(), "mcp_pdp_bundle_last_success_age_seconds", { source: "local" }),
      0,
    );
    clock.ms += 42_000;
    assert.equal(
      total(await scrape(), "mcp_pdp_bundle_last_success_age_seconds", { source: "local" }),
      42,
    );
    assert.equal(total(await scrape(), "mcp_pdp_bundle_activations_total", { source: "local" }), 0);
    writeFileSync(data, "unknown_tool: deny\n");
    assert.equal((await postJson(`${pdp.url}/v1/policy/reload`, "", ops)).status, 200);
    const after = await scrape();
    assert.equal(total(after, "mcp_pdp_bundle_last_success_age_seconds", { source: "local" }), 0);
    assert.equal(total(after, "mcp_pdp_bundle_activations_total", { source: "local" }), 1);
    assert.equal(
      total(after, "mcp_pdp_bundle_loaded_timestamp_seconds"),
      (startMs + 42_000) / 1000,
    );
    const info = after.samples.filter((s) => s.name === "mcp_pdp_bundle_info");
    assert.deepEqual(
      info.map((s) => s.labels.revision),
      [(await get(pdp, "/ready")).body?.revision],
    );
  });

  test("without max_staleness_s /ready stays 200 however old the last check", async () => {
    const { pdp, clock } = await start({});
    clock.ms += 365 * 86_400_000;
    assert.equal((await get(pdp, "/ready")).status, 200);
  });

  test("max_staleness_s: 503 policy_stale past it (the main /ready and the probe port's), 200 again after a successful check", async () => {
    const { pdp, clock, data } = await start({ max_staleness_s: 60 });
    // The probe port's listener (PDP_PROBE_PORT) answers the same readiness, without credentials.
    const probes = createServer(pdp.app.probeListener).listen(0, "127.0.0.1");
    await once(probes, "listening");
    closers.push(
      () =>
        new Promise((resolve) => {
          probes.close(() => {
            resolve();
          });
        }),
    );
    const probeUrl = `http://127.0.0.1:${(probes.address() as AddressInfo).port}`;
    const probe = async () => {
      const response = await fetch(`${probeUrl}/ready`);
      return { status: response.status, body: (await response.json()) as Record<string, unknown> };
    };
    assert.equal((await get(pdp, "/ready")).status, 200);
    clock.ms += 60_000;
    assert.equal((await get(pdp, "/ready")).status, 200, "at the limit, not past it");
    clock.ms += 1;
    const stale = await get(pdp, "/ready");
    assert.equal(stale.status, 503);
    assert.equal(stale.body?.code, "policy_stale");
    assert.match(String(stale.body.message), /local.*60 s.*max_staleness_s/);
    assert.deepEqual(await probe(), { status: 503, body: stale.body });
    assert.equal(((await get(pdp, "/v1/status")).body as { stale: boolean }).stale, true);
    // A failed check does not make it fresh.
    writeFileSync(data, "unknown_tool: [\n");
    assert.equal((await postJson(`${pdp.url}/v1/policy/reload`, "", ops)).status, 422);
    assert.equal((await get(pdp, "/ready")).status, 503);
    // A successful one does, even when it changes nothing.
    writeFileSync(data, "unknown_tool: read\n");
    const unchanged = await postJson(`${pdp.url}/v1/policy/reload`, "", ops);
    assert.equal((unchanged.body as { result: string }).result, "unchanged");
    assert.equal((await get(pdp, "/ready")).status, 200);
    assert.equal((await probe()).status, 200);
  });
});
