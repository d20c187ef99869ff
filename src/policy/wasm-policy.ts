import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { loadPolicy, type LoadedPolicy } from "@open-policy-agent/opa-wasm";
import { EvaluationError, StartupError, describeThrown } from "../errors.ts";
import type { DataDocument } from "./data-overlay.ts";
import { inputJsonBytes, type InputJsonCache } from "./input-json.ts";

/** Pass as the input to evaluate an entrypoint without any input (OPA's "no input"). */
export const noInput: unique symbol = Symbol("no input");

/** What one evaluation of an entrypoint produced. Undefined is not a deny: callers decide. */
export type EvaluationOutcome = { defined: true; value: unknown } | { defined: false };

/**
 * Builtins the SDK implements in JavaScript. A compiled module imports from the
 * host only the builtins it cannot run natively; anything it imports that is
 * not in this set would fail at evaluation time, so loading refuses it.
 */
function sdkBuiltins(): Set<string> {
  const require = createRequire(import.meta.url);
  const entry = require.resolve("@open-policy-agent/opa-wasm");
  const builtins = require(join(dirname(entry), "builtins", "index.js")) as Record<string, unknown>;
  return new Set(Object.keys(builtins));
}

/**
 * One instance of a compiled Rego module, loaded once and reused for every
 * evaluation (evaluation is synchronous, so one instance per thread suffices).
 * The compiled module is kept: each worker thread instantiates the same one
 * instead of compiling the bytes again.
 */
export class WasmPolicy {
  /** The compiled module; a WebAssembly.Module can be posted to a worker thread. */
  readonly module: WebAssembly.Module;
  private readonly policy: LoadedPolicy;
  private readonly entrypointIds: ReadonlyMap<string, number>;

  private constructor(
    module: WebAssembly.Module,
    policy: LoadedPolicy,
    entrypointIds: ReadonlyMap<string, number>,
  ) {
    this.module = module;
    this.policy = policy;
    this.entrypointIds = entrypointIds;
  }

  /**
   * Compiles the bytes (or takes a module compiled before), instantiates it,
   * checks that every required entrypoint exists and every imported builtin
   * is available, then sets the data document.
   */
  static async load(
    wasm: Uint8Array | WebAssembly.Module,
    data: DataDocument,
    requiredEntrypoints: readonly string[],
    source: string,
  ): Promise<WasmPolicy> {
    let module: WebAssembly.Module;
    let policy: LoadedPolicy;
    try {
      module = wasm instanceof WebAssembly.Module ? wasm : await WebAssembly.compile(wasm.slice());
      policy = await loadPolicy(module);
    } catch (thrown) {
      throw new StartupError("bundle_invalid", [
        `${source}: policy.wasm: ${describeThrown(thrown)}`,
      ]);
    }

    const entrypoints = readEntrypoints(policy);
    const missing = requiredEntrypoints.filter((name) => !entrypoints.has(name));
    if (missing.length > 0) {
      throw new StartupError(
        "entrypoint_missing",
        missing.map(
          (name) =>
            `${source}: entrypoint ${name} is not in the bundle (it has: ${[...entrypoints.keys()].join(", ") || "none"}); check PDP_ENTRYPOINT or rebuild with opa build -e ${name}`,
        ),
      );
    }

    const available = sdkBuiltins();
    const unsupported = importedBuiltins(policy).filter((name) => !available.has(name));
    if (unsupported.length > 0) {
      throw new StartupError(
        "builtin_unsupported",
        unsupported.map(
          (name) => `${source}: the policy uses builtin ${name}, which opa-wasm cannot evaluate`,
        ),
      );
    }

    try {
      policy.setData(data);
    } catch (thrown) {
      throw new StartupError("data_invalid", [`${source}: data: ${describeThrown(thrown)}`]);
    }
    return new WasmPolicy(module, policy, entrypoints);
  }

  /** The entrypoints this module can evaluate. */
  get entrypoints(): string[] {
    return [...this.entrypointIds.keys()];
  }

  hasEntrypoint(name: string): boolean {
    return this.entrypointIds.has(name);
  }

  /**
   * Evaluates one entrypoint with `input` (any JSON value, `false`, `0`, `""`
   * and `null` included) or, given `noInput`, with no input at all. The input
   * is handed to the SDK as the bytes of its JSON text: the SDK treats a falsy
   * value as "no input" and only a real ArrayBuffer as raw JSON, so passing
   * bytes closes both pitfalls. Every failure surfaces as EvaluationError.
   * `cache` lets the items of one batch serialize their shared parts once.
   */
  evaluate(entrypoint: string, input: unknown, cache?: InputJsonCache): EvaluationOutcome {
    const id = this.entrypointIds.get(entrypoint);
    if (id === undefined) {
      throw new EvaluationError("evaluation_error", `entrypoint ${entrypoint} is not loaded`);
    }
    const inputBytes = input === noInput ? undefined : jsonBytes(input, cache);
    let resultSet: unknown;
    try {
      resultSet = this.policy.evaluate(inputBytes, id);
    } catch (thrown) {
      throw new EvaluationError("evaluation_error", describeThrown(thrown));
    }
    if (!Array.isArray(resultSet)) {
      throw new EvaluationError("evaluation_error", "the policy returned no result set");
    }
    const first: unknown = resultSet[0];
    if (
      resultSet.length === 0 ||
      typeof first !== "object" ||
      first === null ||
      !("result" in first)
    ) {
      return { defined: false };
    }
    if (resultSet.length > 1) {
      throw new EvaluationError("evaluation_error", "the policy returned more than one result");
    }
    return { defined: true, value: first.result };
  }
}

/** The input's JSON bytes; refuses what JSON cannot represent (undefined, functions, symbols, cycles, BigInt). */
function jsonBytes(input: unknown, cache: InputJsonCache | undefined): ArrayBuffer {
  let bytes: ArrayBuffer | undefined;
  try {
    bytes = inputJsonBytes(input, cache);
  } catch (thrown) {
    throw new EvaluationError("input_invalid", `input is not JSON: ${describeThrown(thrown)}`);
  }
  if (bytes === undefined) {
    throw new EvaluationError("input_invalid", `input is not JSON: ${typeof input}`);
  }
  return bytes;
}

function readEntrypoints(policy: LoadedPolicy): Map<string, number> {
  const raw = policy.entrypoints as unknown;
  const ids = new Map<string, number>();
  if (typeof raw === "object" && raw !== null) {
    for (const [name, id] of Object.entries(raw)) {
      if (typeof id === "number") ids.set(name, id);
    }
  }
  return ids;
}

interface OpaExports {
  builtins: () => number;
  opa_json_dump: (address: number) => number;
}

/** Names of the builtins the module imports from the host (its `builtins()` export). */
function importedBuiltins(policy: LoadedPolicy): string[] {
  const { exports } = policy.wasmInstance as unknown as { exports: OpaExports };
  const address = exports.opa_json_dump(exports.builtins());
  const memory = new Uint8Array((policy.mem as unknown as { buffer: ArrayBuffer }).buffer);
  let end = address;
  while (memory[end] !== 0) end++;
  const names = JSON.parse(new TextDecoder().decode(memory.subarray(address, end))) as Record<
    string,
    number
  >;
  return Object.keys(names);
}
