import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { embeddedBundlePath } from "../../src/config/index.ts";
import { StartupError } from "../../src/errors.ts";
import { loadActivePolicy, type PolicySource } from "../../src/policy/policy-loader.ts";
import { buildWasmBundle, repoRoot, scratchDir } from "../support/opa.ts";

const operatorData = join(repoRoot, "examples", "operator-data.yaml");

function source(overrides: Partial<PolicySource>): PolicySource {
  return {
    bundlePath: embeddedBundlePath,
    dataPath: undefined,
    entrypoint: "mcp/authz/decision",
    configCheck: { entrypoint: "mcp/authz/config_errors", required: false },
    ...overrides,
  };
}

async function refusal(promise: Promise<unknown>): Promise<StartupError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof StartupError, `expected StartupError, got ${String(error)}`);
    return error;
  }
  assert.fail("expected the load to be refused");
}

describe("loading policy", () => {
  const scratch = scratchDir();
  after(() => {
    scratch.remove();
  });

  test("the embedded bundle loads with its revision and entrypoints", async () => {
    const active = await loadActivePolicy(source({}));
    assert.match(active.revision, /^sha256-[0-9a-f]{16}$/);
    assert.deepEqual(active.policy.entrypoints.sort(), [
      "mcp/authz/config_errors",
      "mcp/authz/decision",
      "mcp/authz/search_action",
      "mcp/authz/search_resource",
      "mcp/authz/search_subject",
    ]);
  });

  test("a bundle directory loads like the tarball", async () => {
    const dir = join(scratch.dir, "unpacked");
    mkdirSync(dir);
    execFileSync("tar", ["-xzf", embeddedBundlePath, "-C", dir]);
    const fromDir = await loadActivePolicy(source({ bundlePath: dir }));
    const fromTar = await loadActivePolicy(source({}));
    assert.equal(fromDir.revision, fromTar.revision);
  });

  test("operator data is merged over the bundle data", async () => {
    const input = {
      subject: { type: "user", id: "a", properties: { scopes: ["mcp:read"], auth_age_s: 10 } },
      action: { name: "tools/call" },
      resource: {
        type: "tool",
        id: "read_file",
        properties: { server: "files", tool: "read_file" },
      },
      context: { time: { unix_s: 1764151200 }, device: { trust: "managed" } },
    };
    const plain = await loadActivePolicy(source({}));
    const tuned = await loadActivePolicy(source({ dataPath: operatorData }));
    const risk = (active: typeof plain) => {
      const outcome = active.policy.evaluate("mcp/authz/decision", input);
      assert.ok(outcome.defined);
      return (outcome.value as { risk: unknown }).risk;
    };
    assert.deepEqual(risk(plain), { class: "destructive", source: "unknown_tool" });
    assert.deepEqual(risk(tuned), { class: "read", source: "catalog" });
  });

  test("a missing bundle file is bundle_unreadable naming PDP_BUNDLE", async () => {
    const error = await refusal(
      loadActivePolicy(source({ bundlePath: join(scratch.dir, "nope.tar.gz") })),
    );
    assert.equal(error.code, "bundle_unreadable");
    assert.match(error.problems[0] ?? "", /PDP_BUNDLE/);
  });

  test("a file that is not a bundle is refused", async () => {
    const file = join(scratch.dir, "garbage.tar.gz");
    writeFileSync(file, "this is not a tarball");
    const error = await refusal(loadActivePolicy(source({ bundlePath: file })));
    assert.equal(error.code, "bundle_not_gzip");
  });

  test("a bundle without policy.wasm is bundle_invalid", async () => {
    const dir = join(scratch.dir, "no-wasm");
    mkdirSync(dir);
    writeFileSync(join(dir, "data.json"), "{}");
    const error = await refusal(loadActivePolicy(source({ bundlePath: dir })));
    assert.equal(error.code, "bundle_invalid");
    assert.match(error.problems.join(" "), /policy\.wasm/);
  });

  test("an unknown entrypoint is entrypoint_missing and lists the available ones", async () => {
    const error = await refusal(loadActivePolicy(source({ entrypoint: "mcp/authz/nope" })));
    assert.equal(error.code, "entrypoint_missing");
    assert.match(error.problems[0] ?? "", /mcp\/authz\/nope.*mcp\/authz\/decision/);
  });

  test("operator data with mistakes is policy_config_invalid naming each key", async () => {
    const file = join(scratch.dir, "bad.yaml");
    writeFileSync(
      file,
      [
        "tools:",
        '  "files/rm_*": destrutive',
        "unknown_tool: maybe",
        "risk_classes:",
        "  write: { networks: [10.0.0.0/8, not-a-cidr] }",
      ].join("\n"),
    );
    const error = await refusal(loadActivePolicy(source({ dataPath: file })));
    assert.equal(error.code, "policy_config_invalid");
    const text = error.problems.join("\n");
    assert.match(text, /tools\["files\/rm_\*"\]/);
    assert.match(text, /unknown_tool/);
    assert.match(text, /risk_classes\.write\.networks\[1\]/);
  });

  test("an unreadable operator data file is data_invalid naming PDP_DATA", async () => {
    const file = join(scratch.dir, "broken.yaml");
    writeFileSync(file, "tools: [unclosed");
    const error = await refusal(loadActivePolicy(source({ dataPath: file })));
    assert.equal(error.code, "data_invalid");
    assert.match(error.problems[0] ?? "", /PDP_DATA/);
  });

  test("operator data that is not a mapping is data_invalid", async () => {
    const file = join(scratch.dir, "list.json");
    writeFileSync(file, "[1, 2]");
    const error = await refusal(loadActivePolicy(source({ dataPath: file })));
    assert.equal(error.code, "data_invalid");
  });

  describe("with policies compiled by the real opa", () => {
    let usesClock = "";
    before(() => {
      // time.now_ns is not implemented by opa-wasm: the module imports it from the host.
      usesClock = buildWasmBundle(
        join(scratch.dir, "clock"),
        { "clock.rego": "package clock\n\nallow if time.now_ns() > 0\n" },
        ["clock/allow"],
      );
    });

    test("a policy importing a builtin opa-wasm lacks is builtin_unsupported", async () => {
      const error = await refusal(
        loadActivePolicy(
          source({ bundlePath: usesClock, entrypoint: "clock/allow", configCheck: undefined }),
        ),
      );
      assert.equal(error.code, "builtin_unsupported");
      assert.match(error.problems[0] ?? "", /time\.now_ns/);
    });

    test("a required configuration check entrypoint must exist", async () => {
      const error = await refusal(
        loadActivePolicy(
          source({
            bundlePath: usesClock,
            entrypoint: "clock/allow",
            configCheck: { entrypoint: "clock/config_errors", required: true },
          }),
        ),
      );
      assert.equal(error.code, "entrypoint_missing");
    });
  });
});
