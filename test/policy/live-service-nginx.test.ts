/**
 * The "Done when" of issue 10 with real parts: a real NGINX serves bundles
 * signed by the real `opa build --signing-key` to a PDP on loopback
 * (policy.service + policy.signing). The PDP picks up a new signed bundle
 * within the polling delay while a bounded client loop sees no failed
 * request; a tampered and an unsigned bundle are refused, named in
 * /v1/status, counted in mcp_pdp_bundle_load_failures_total{source="service"}
 * and logged, and the last good revision keeps serving; a restart with the
 * service down starts from the persisted bundle; with no persisted bundle it
 * does not start.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import {
  chmodSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { StartupError } from "../../src/errors.ts";
import { defaultBundleLimits, readBundleArchive } from "../../src/policy/bundle-archive.ts";
import { embeddedBundlePath } from "../../src/config/index.ts";
import { postJson, startPdp, type RunningPdp } from "../support/pdp.ts";
import { opaPath, scratchDir } from "../support/opa.ts";
import { freePort } from "../support/ports.ts";
import { packBundle } from "../support/tarball.ts";
import type { Managed } from "../e2e/support/processes.ts";
import { startStaticNginx } from "../support/static-nginx.ts";
import { parseExposition, sha256Hex, total, waitFor } from "../observability/helpers.ts";

const scratch = scratchDir();
const dir = scratch.dir;
const www = join(dir, "www", "bundles");
const src = join(dir, "src");
const persistDir = join(dir, "persisted");
let origin: string;
let nginx: Managed | undefined;

const keys = {
  ops: randomBytes(24).toString("base64url"),
  pep: randomBytes(24).toString("base64url"),
};
const ops = { "x-api-key": keys.ops };
const pep = { "x-api-key": keys.pep };

const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
const privateKeyFile = join(dir, "signing.pem");
const publicKeyFile = join(dir, "signing.pub.pem");

/** The embedded default policy rebuilt by the real opa with this revision, signed or not. */
function build(revision: string, signed: boolean): Buffer {
  const out = join(dir, `${revision}.tar.gz`);
  execFileSync(
    opaPath(),
    [
      "build",
      "--bundle",
      ".",
      "--revision",
      revision,
      "-o",
      out,
      ...(signed ? ["--signing-key", privateKeyFile] : []),
    ],
    { cwd: src, stdio: ["ignore", "ignore", "inherit"] },
  );
  return readFileSync(out);
}

/** A signed bundle whose data.json was changed after signing: its signed hash no longer matches. */
async function tampered(signedBundle: Buffer): Promise<Buffer> {
  const files = await readBundleArchive(signedBundle, defaultBundleLimits, "tamper");
  const data = JSON.parse(
    (files.get("/data.json") ?? Buffer.from("{}")).toString("utf8"),
  ) as Record<string, unknown>;
  files.set("/data.json", Buffer.from(JSON.stringify({ ...data, tampered: true })));
  return packBundle(files);
}

let mtime = 1_700_000_000;
/** Publishes a bundle as an operator should: a new file renamed over the old one (new mtime, new ETag). */
function publish(bytes: Buffer): void {
  const target = join(www, "authz.tar.gz");
  const temporary = `${target}.new`;
  writeFileSync(temporary, bytes, { mode: 0o644 });
  mtime += 100;
  utimesSync(temporary, mtime, mtime);
  renameSync(temporary, target);
}

function configFile(name: string, policy: Record<string, unknown>): string {
  const path = join(dir, name);
  writeFileSync(
    path,
    JSON.stringify({
      callers: [
        {
          name: "pep",
          api_key_sha256: [sha256Hex(keys.pep)],
          permissions: ["authzen"],
          assert_subject: true,
        },
      ],
      ops: { api_key_sha256: [sha256Hex(keys.ops)] },
      policy,
    }),
  );
  return path;
}

const signing = {
  keys: [{ id: "default", algorithm: "RS256", key_file: publicKeyFile }],
  keyid: "default",
};
const service = (url: string, extra: Record<string, unknown> = {}) => ({
  url,
  resource: "bundles/authz.tar.gz",
  min_delay_s: 1,
  max_delay_s: 1,
  timeout_s: 2,
  ...extra,
});

const toolCall = () => ({
  subject: {
    type: "user",
    id: "alice",
    properties: { scopes: ["mcp:read"], auth_time: Math.floor(Date.now() / 1000) - 300 },
  },
  action: { name: "tools/call" },
  resource: { type: "tool", id: "files/read_file" },
  context: { device: { trust: "compliant" } },
});

async function readyRevision(pdp: RunningPdp): Promise<string> {
  const response = await fetch(`${pdp.url}/ready`, { headers: ops });
  assert.equal(response.status, 200);
  return ((await response.json()) as { revision: string }).revision;
}

async function serviceStatus(pdp: RunningPdp): Promise<Record<string, unknown>> {
  const response = await fetch(`${pdp.url}/v1/status`, { headers: ops });
  assert.equal(response.status, 200);
  const body = (await response.json()) as { bundles: Record<string, Record<string, unknown>> };
  return body.bundles.service ?? {};
}

async function serviceFailures(pdp: RunningPdp, reason: string): Promise<number> {
  const response = await fetch(`${pdp.url}/metrics`, { headers: ops });
  return total(parseExposition(await response.text()), "mcp_pdp_bundle_load_failures_total", {
    source: "service",
    reason,
  });
}

let v1: Buffer;
let v2: Buffer;
let unsigned: Buffer;

before(async () => {
  chmodSync(dir, 0o755);
  writeFileSync(privateKeyFile, rsa.privateKey.export({ type: "pkcs8", format: "pem" }), {
    mode: 0o600,
  });
  writeFileSync(publicKeyFile, rsa.publicKey.export({ type: "spki", format: "pem" }));
  mkdirSync(src);
  // GNU tar notes on stderr that it strips opa's leading "/"; a failure still throws.
  execFileSync("tar", ["-xzf", embeddedBundlePath, "-C", src], { stdio: "ignore" });
  rmSync(join(src, ".signatures.json"), { force: true });
  rmSync(join(src, ".manifest"), { force: true });
  v1 = build("v1", true);
  v2 = build("v2", true);
  unsigned = build("v4-unsigned", false);

  mkdirSync(www, { recursive: true, mode: 0o755 });
  publish(v1);
  const started = await startStaticNginx(dir, {
    locations: `        location /bundles/ {
            root ${dir}/www;
        }`,
    readyPath: "/bundles/authz.tar.gz",
  });
  origin = started.origin;
  nginx = started.process;
});

after(async () => {
  await nginx?.stop();
  scratch.remove();
});

describe("a PDP polling nginx for signed bundles", () => {
  test("picks up a new signed bundle within the polling delay with no failed request; refuses tampered and unsigned ones and keeps the last good revision", async (t) => {
    publish(v1);
    const pdp = await startPdp({
      env: {
        PDP_CONFIG: configFile("service.json", {
          signing,
          service: service(origin, { persist_dir: persistDir }),
        }),
      },
    });
    try {
      assert.equal(await readyRevision(pdp), "v1");
      assert.equal((await serviceStatus(pdp)).active_revision, "v1");

      // A bounded client loop for the whole test: every answer must be a 200.
      const running = { stop: false };
      const statuses = new Map<number, number>();
      const loop = (async () => {
        for (let i = 0; i < 20_000 && !running.stop; i += 1) {
          const answer = await postJson(`${pdp.url}/access/v1/evaluation`, toolCall(), pep);
          statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
        }
      })();

      const published = Date.now();
      publish(v2);
      await waitFor(
        "v2 active",
        async () => ((await readyRevision(pdp)) === "v2" ? true : undefined),
        5000,
      );
      const pickedUpMs = Date.now() - published;
      // The polling delay is 1 s; nginx's ETag changed with the file.
      assert.ok(pickedUpMs < 3000, `v2 active after ${pickedUpMs} ms`);
      const activated = pdp.logs.find(
        (line) => line.message === "policy activated" && line.revision === "v2",
      );
      assert.equal(activated?.source, "service");
      assert.equal(activated.trigger, "poll");
      assert.equal(activated.previous, "v1");

      // Tampered: data.json changed after signing.
      publish(await tampered(v2));
      const refusal = await waitFor(
        "tampered bundle refused",
        async () => {
          const status = await serviceStatus(pdp);
          return status.code === "bundle_file_hash_mismatch" ? status : undefined;
        },
        5000,
      );
      assert.match(String(refusal.message), /data\.json/);
      assert.equal(refusal.active_revision, "v2");
      assert.equal(await readyRevision(pdp), "v2");
      assert.ok((await serviceFailures(pdp, "bundle_file_hash_mismatch")) >= 1);
      const logged = pdp.logs.find(
        (line) =>
          line.message === "policy refused, the active one kept" &&
          line.reason === "bundle_file_hash_mismatch",
      );
      assert.equal(logged?.source, "service");
      assert.equal(logged.revision, "v2");

      // Unsigned, with keys configured.
      publish(unsigned);
      await waitFor(
        "unsigned bundle refused",
        async () => ((await serviceStatus(pdp)).code === "bundle_unsigned" ? true : undefined),
        5000,
      );
      assert.ok((await serviceFailures(pdp, "bundle_unsigned")) >= 1);
      assert.equal(await readyRevision(pdp), "v2");

      // An admin reload polls the service now: still refused, still v2.
      const reload = await postJson(`${pdp.url}/v1/policy/reload`, "", ops);
      assert.equal(reload.status, 422, JSON.stringify(reload.body));
      assert.equal((reload.body as { code: string }).code, "bundle_unsigned");

      running.stop = true;
      await loop;
      const sent = [...statuses.values()].reduce((a, b) => a + b, 0);
      t.diagnostic(
        `v2 active ${pickedUpMs} ms after publishing (polling delay 1 s); ${sent} client requests, statuses ${JSON.stringify(Object.fromEntries(statuses))}`,
      );
      assert.deepEqual([...statuses.keys()], [200]);
      const revisions = new Set(pdp.decisions.map((record) => String(record.revision)));
      assert.ok(
        [...revisions].every((revision) => revision === "v1" || revision === "v2"),
        [...revisions].join(", "),
      );
    } finally {
      await pdp.close();
    }
  });

  test("with the service down, starts from the persisted bundle; without one, refuses to start", async () => {
    const down = `http://127.0.0.1:${await freePort()}`;
    const data = join(dir, "data.yaml");
    writeFileSync(data, "unknown_tool: read\n");
    const pdp = await startPdp({
      env: {
        PDP_DATA: data,
        PDP_CONFIG: configFile("down.json", {
          signing,
          service: service(down, { persist_dir: persistDir, persisted_max_age_s: 3600 }),
        }),
      },
    });
    try {
      // The last bundle the first PDP activated, with the operator data merged over it.
      const started = await readyRevision(pdp);
      assert.match(started, /^v2\+data\.[0-9a-f]{12}$/);
      const line = pdp.logs.find((entry) =>
        String(entry.message).includes("started from the persisted bundle"),
      );
      assert.match(String(line?.reason), /network/);
      assert.equal((await serviceStatus(pdp)).code, "network");
      // Staleness counts from when that bundle was fetched (the first PDP), not from this start.
      const savedAt = Date.parse(String(line?.saved_at));
      assert.equal(Date.parse(String((await serviceStatus(pdp)).last_successful_request)), savedAt);

      // An admin reload re-reads the data over the service's bundle and polls the service (down).
      writeFileSync(`${data}.new`, "unknown_tool: deny\n");
      renameSync(`${data}.new`, data);
      const reload = await postJson(`${pdp.url}/v1/policy/reload`, "", ops);
      assert.equal(reload.status, 200, JSON.stringify(reload.body));
      assert.equal((reload.body as { result: string }).result, "activated");
      // The data edit asked the service nothing: its staleness still counts from the saved bundle.
      assert.equal(Date.parse(String((await serviceStatus(pdp)).last_successful_request)), savedAt);
      // Nothing new locally: the answer is the service's failure.
      const again = await postJson(`${pdp.url}/v1/policy/reload`, "", ops);
      assert.equal(again.status, 422, JSON.stringify(again.body));
      assert.equal((again.body as { code: string }).code, "network");
      const edited = await readyRevision(pdp);
      assert.match(edited, /^v2\+data\.[0-9a-f]{12}$/);
      assert.notEqual(edited, started);
      assert.equal((await serviceStatus(pdp)).active_revision, edited);
      assert.ok((await serviceFailures(pdp, "network")) >= 1);
    } finally {
      await pdp.close();
    }

    await assert.rejects(
      startPdp({
        env: {
          PDP_CONFIG: configFile("down-nothing.json", {
            signing,
            service: service(down, { persist_dir: join(dir, "empty") }),
          }),
        },
      }),
      (error: unknown) =>
        error instanceof StartupError &&
        error.code === "policy_unavailable" &&
        /persisted_missing|no persisted bundle/.test(error.message),
    );
  });
});
