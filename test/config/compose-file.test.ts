/**
 * docker-compose.yml (no Docker engine here to run it): its PDP service's
 * environment is a configuration the PDP accepts, its worker count matches
 * the CPU limit it sets, and it outlasts the drain on stop.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { parse as parseYaml } from "yaml";
import { loadConfig } from "../../src/config/index.ts";
import { repoRoot } from "../support/opa.ts";

interface ComposeFile {
  services: {
    pdp: {
      environment: Record<string, string>;
      volumes: string[];
      cpus: number;
      stop_grace_period: string;
    };
  };
}

const compose = parseYaml(
  readFileSync(join(repoRoot, "docker-compose.yml"), "utf8"),
) as ComposeFile;
const pdp = compose.services.pdp;

test("docker-compose.yml: the PDP's environment is a valid configuration (its mounted files as in the repo)", () => {
  // The container path of each read-only mount, here the repository's file it mounts.
  const mounted = new Map(
    pdp.volumes.map((volume) => {
      const [host = "", container = ""] = volume.split(":");
      return [container, join(repoRoot, host)];
    }),
  );
  const env = Object.fromEntries(
    Object.entries(pdp.environment).map(([name, value]) => [name, mounted.get(value) ?? value]),
  );
  const config = loadConfig(env);
  assert.equal(config.host, "0.0.0.0");
  assert.equal(config.workers, pdp.cpus, "one worker per CPU the container may use");
  const graceS = Number(/^(\d+)s$/.exec(pdp.stop_grace_period)?.[1]);
  assert.ok(
    graceS * 1000 > config.transport.drainDelayMs + config.shutdownTimeoutMs,
    "docker stops the container only after the drain and the shutdown timeout",
  );
});
