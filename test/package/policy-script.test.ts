/**
 * `node scripts/policy.ts --help` (and a mistyped command) answers from the
 * arguments alone: it must not install opa (`go install`) first. The PATH
 * holds only node, so any attempt to run scripts/ensure-opa.sh (bash) or opa
 * would fail the command.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { repoRoot } from "../support/opa.ts";

function policyScript(args: string[]) {
  return spawnSync(process.execPath, [join(repoRoot, "scripts", "policy.ts"), ...args], {
    cwd: repoRoot,
    encoding: "utf8",
    timeout: 20000,
    env: { PATH: dirname(process.execPath) },
  });
}

test("policy.ts --help prints its usage and exits 0 without looking for opa", () => {
  for (const flag of ["--help", "-h", "help"]) {
    const ran = policyScript([flag]);
    assert.equal(ran.status, 0, ran.stderr);
    assert.match(ran.stdout, /^usage: node scripts\/policy\.ts build\|check\|test$/m);
    assert.match(ran.stdout, /^ {2}check /m);
  }
});

test("an unknown or missing command: the usage on stderr, exit 2, no opa", () => {
  for (const args of [["bulid"], []]) {
    const ran = policyScript(args);
    assert.equal(ran.status, 2, ran.stderr);
    assert.match(ran.stderr, /^usage: node scripts\/policy\.ts build\|check\|test$/m);
  }
});
