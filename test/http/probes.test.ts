/**
 * Probes pass in every configuration: the real process with ops keys, and
 * with an mTLS-only main listener, answers the Dockerfile's HEALTHCHECK
 * command (read from the Dockerfile and run exactly as written, so the two
 * cannot drift) and the README's Kubernetes probes (read from the README's
 * snippet and sent as a kubelet would: plain HTTP, no credentials) on
 * PDP_PROBE_PORT, which reveals nothing but up/ready. The main listener
 * still refuses probes without credentials.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { once } from "node:events";
import { createServer } from "node:net";
import type { AddressInfo } from "node:net";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { parse as parseYaml } from "yaml";
import { certificateNames, generateTestPki } from "../support/certs.ts";
import { repoRoot, scratchDir } from "../support/opa.ts";
import { freePort } from "../support/ports.ts";
import { startMain, waitForLog, waitUntil, type MainProcess } from "../support/main-process.ts";
import { head, rawExchange } from "./raw-http.ts";

const scratch = scratchDir();
const pki = generateTestPki();
after(() => {
  pki.remove();
  scratch.remove();
});

const sha256 = (text: string) => createHash("sha256").update(text, "utf8").digest("hex");
const pepKey = randomBytes(24).toString("base64url");
const opsKey = randomBytes(24).toString("base64url");

function writeConfig(name: string, config: unknown): string {
  const file = join(scratch.dir, name);
  writeFileSync(file, JSON.stringify(config));
  return file;
}

const configurations = {
  "ops keys": writeConfig("ops-keys.json", {
    callers: [{ name: "pep", api_key_sha256: [sha256(pepKey)] }],
    ops: { api_key_sha256: [sha256(opsKey)] },
  }),
  "mTLS on": writeConfig("mtls.json", {
    callers: [{ name: "gateway", mtls_subjects: [certificateNames.gateway], assert_subject: true }],
    tls: {
      cert_file: pki.server.certFile,
      key_file: pki.server.keyFile,
      client_ca_file: pki.ca.certFile,
    },
  }),
};

// ---------------------------------------------------------------- the Dockerfile, as written

const dockerfile = readFileSync(join(repoRoot, "Dockerfile"), "utf8");
/** Instructions of the final stage, continuation lines joined. */
const instructions = dockerfile
  .slice(dockerfile.lastIndexOf("\nFROM "))
  .replace(/\\\n/g, " ")
  .split("\n")
  .map((line) => line.trim())
  .filter((line) => line !== "" && !line.startsWith("#"));

/** The image's environment: every `ENV k=v …` of the final stage. */
function imageEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of instructions.filter((l) => l.startsWith("ENV "))) {
    for (const pair of line.slice(4).trim().split(/\s+/)) {
      const [name = "", ...value] = pair.split("=");
      env[name] = value.join("=");
    }
  }
  return env;
}

/** The HEALTHCHECK's exec-form command: `HEALTHCHECK [options] CMD ["…", …]`. */
function healthcheckCommand(): string[] {
  const line = instructions.find((l) => l.startsWith("HEALTHCHECK "));
  assert.ok(line !== undefined, "the Dockerfile has a HEALTHCHECK");
  const cmd = /\bCMD\s+(\[.*\])\s*$/.exec(line);
  assert.ok(cmd?.[1] !== undefined, `HEALTHCHECK uses the exec form: ${line}`);
  const argv = JSON.parse(cmd[1]) as string[];
  assert.ok(argv.length > 0 && argv.every((a) => typeof a === "string"));
  return argv;
}

/** Runs the HEALTHCHECK command as Docker would inside the container; its exit code. */
async function runHealthcheck(env: Record<string, string>): Promise<number | null> {
  const [command = "", ...args] = healthcheckCommand();
  const child = spawn(command, args, {
    env: { ...imageEnv(), ...env, PATH: process.env.PATH ?? "" },
    stdio: "ignore",
  });
  // Docker's --timeout=2s: a check that hangs is a failure.
  const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
  const [code] = (await once(child, "exit")) as [number | null];
  clearTimeout(timer);
  return code;
}

// ---------------------------------------------------------------- the README's Kubernetes snippet

interface HttpGet {
  path: string;
  port: string | number;
  scheme?: string;
  httpHeaders?: unknown[];
}
interface Container {
  env?: { name: string; value: string }[];
  ports?: { name?: string; containerPort: number }[];
  readinessProbe?: { httpGet?: HttpGet };
  livenessProbe?: { httpGet?: HttpGet };
}

function kubernetesContainer(): Container {
  const readme = readFileSync(join(repoRoot, "README.md"), "utf8");
  const blocks = [...readme.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1] ?? "");
  const snippet = blocks.find((block) => block.includes("readinessProbe"));
  assert.ok(snippet !== undefined, "README.md shows a Kubernetes probe snippet");
  const doc = parseYaml(snippet) as {
    spec: { template: { spec: { containers: Container[] } } };
  };
  const container = doc.spec.template.spec.containers[0];
  assert.ok(container !== undefined);
  return container;
}

/** A probe's port as a number: a containerPort, or the name of one. */
function resolvePort(container: Container, port: string | number): number {
  if (typeof port === "number") return port;
  const named = container.ports?.find((p) => p.name === port);
  assert.ok(named !== undefined, `the snippet names a port ${port} it does not declare`);
  return named.containerPort;
}

test("the README's probes, the image's PDP_PROBE_PORT and its HEALTHCHECK agree on one port", () => {
  const container = kubernetesContainer();
  const probePort = container.env?.find((e) => e.name === "PDP_PROBE_PORT")?.value;
  assert.equal(probePort, imageEnv().PDP_PROBE_PORT, "the snippet's PDP_PROBE_PORT is the image's");
  for (const probe of [container.readinessProbe, container.livenessProbe]) {
    const httpGet = probe?.httpGet;
    assert.ok(httpGet !== undefined);
    assert.equal(String(resolvePort(container, httpGet.port)), probePort);
    assert.ok(httpGet.scheme === undefined || httpGet.scheme === "HTTP", "plain HTTP");
    assert.equal(httpGet.httpHeaders, undefined, "a probe sends no credentials");
  }
  assert.match(healthcheckCommand().join(" "), /process\.env\.PDP_PROBE_PORT/);
});

for (const [name, configFile] of Object.entries(configurations)) {
  describe(`probes with ${name}`, () => {
    let pdp: MainProcess;
    let port: number;
    let probePort: number;

    before(async () => {
      port = await freePort();
      probePort = await freePort();
      pdp = startMain({
        PORT: String(port),
        PDP_PROBE_PORT: String(probePort),
        PDP_CONFIG: configFile,
        PDP_DATA: join(repoRoot, "examples", "operator-data.yaml"),
        PDP_DECISION_LOG: "off",
        PDP_DRAIN_DELAY_MS: "1500",
      });
      await waitForLog(pdp, "probes listening");
      await waitForLog(pdp, "listening");
    });
    after(async () => {
      await pdp.kill();
    });

    test("the main listener refuses a probe without credentials", async () => {
      const answer = await rawExchange(port, { send: head("GET", "/ready", {}), waitMs: 3000 });
      // 401 with ops keys; with mTLS a plain-HTTP probe gets no HTTP answer at all.
      assert.notEqual(answer.status, 200, JSON.stringify(answer));
    });

    test("the Dockerfile's HEALTHCHECK passes", async () => {
      assert.equal(
        await runHealthcheck({ PORT: String(port), PDP_PROBE_PORT: String(probePort) }),
        0,
      );
    });

    test("the README's readiness and liveness probes pass, without credentials", async () => {
      const container = kubernetesContainer();
      for (const probe of [container.readinessProbe, container.livenessProbe]) {
        const path = probe?.httpGet?.path ?? "";
        // The snippet's port is the image's 8181; this process listens on a free one instead.
        const response = await fetch(`http://127.0.0.1:${probePort}${path}`);
        assert.equal(response.status, 200, path);
      }
    });

    test("the probe port reveals nothing but up and ready", async () => {
      const ready = await fetch(`http://127.0.0.1:${probePort}/ready`);
      assert.deepEqual(await ready.json(), { status: "ready" });
      const health = await fetch(`http://127.0.0.1:${probePort}/health`);
      assert.deepEqual(await health.json(), { status: "ok" });
      for (const path of [
        "/metrics",
        "/access/v1/evaluation",
        "/.well-known/authzen-configuration",
        "/",
      ]) {
        const response = await fetch(`http://127.0.0.1:${probePort}${path}`);
        assert.equal(response.status, 404, path);
        assert.doesNotMatch(await response.text(), /revision|mcp_pdp_|decision/);
      }
      const post = await fetch(`http://127.0.0.1:${probePort}/ready`, { method: "POST" });
      assert.equal(post.status, 405);
    });

    test("after SIGTERM the HEALTHCHECK fails (/ready 503) during the drain delay, /health still passes", async () => {
      pdp.child.kill("SIGTERM");
      await waitForLog(pdp, "draining");
      const ready = await fetch(`http://127.0.0.1:${probePort}/ready`);
      assert.equal(ready.status, 503);
      assert.equal(((await ready.json()) as { code: string }).code, "not_ready");
      assert.equal((await fetch(`http://127.0.0.1:${probePort}/health`)).status, 200);
      assert.equal(
        await runHealthcheck({ PORT: String(port), PDP_PROBE_PORT: String(probePort) }),
        1,
      );
      await waitUntil("the process to exit", () => pdp.exited(), 10000, pdp);
      assert.equal(await pdp.exit, 0);
    });
  });
}

test("a probe port that cannot be bound stops the whole process (exit 1), not half of it", async () => {
  const busy = createServer();
  await new Promise<void>((resolve) => busy.listen(0, "127.0.0.1", resolve));
  const taken = (busy.address() as AddressInfo).port;
  try {
    const pdp = startMain({
      PORT: String(await freePort()),
      PDP_PROBE_PORT: String(taken),
      PDP_DECISION_LOG: "off",
    });
    const timer = setTimeout(() => void pdp.kill(), 20000);
    const code = await pdp.exit;
    clearTimeout(timer);
    assert.equal(code, 1, pdp.output());
    assert.ok(
      pdp.logLines().some((line) => line.message === "cannot listen for probes"),
      pdp.output(),
    );
  } finally {
    busy.close();
  }
});
