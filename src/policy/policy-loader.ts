import { createHash } from "node:crypto";
import { defaultConfigEntrypoint, type PolicySettings } from "../config/index.ts";
import { StartupError } from "../errors.ts";
import type { BundleLimits } from "./bundle-archive.ts";
import { readBundle, readBundleBytes } from "./bundle-reader.ts";
import type { BundleVerificationOptions } from "./bundle-signatures.ts";
import { mergeData, readDataFile } from "./data-overlay.ts";
import { WasmPolicy } from "./wasm-policy.ts";

/** Where the policy comes from and which entrypoints matter. */
export interface PolicySource {
  /**
   * Path of an OPA bundle (a `.tar.gz` or a directory); with `bundleBytes`,
   * where those bytes came from (the bundle service's URL), for problems and logs.
   */
  bundlePath: string;
  /** A downloaded bundle's `.tar.gz`: read instead of the path, with the same checks after. */
  bundleBytes?: Uint8Array;
  /** Signature checks (policy.signing): with them an unsigned bundle is refused. */
  verification?: BundleVerificationOptions;
  /** Overrides of the archive limits. */
  limits?: Partial<BundleLimits>;
  /** Operator data file (JSON or YAML), merged over the bundle's data. */
  dataPath: string | undefined;
  /** The decision entrypoint, e.g. `mcp/authz/decision`. */
  entrypoint: string;
  /**
   * An entrypoint answering a list of configuration problems (the default
   * policy's `mcp/authz/config_errors`). Evaluated once at load when the
   * bundle has it; `required` makes its absence an error.
   */
  configCheck: { entrypoint: string; required: boolean } | undefined;
}

/** The configured policy settings as a source to load. */
export function policySourceOf(settings: PolicySettings): PolicySource {
  return {
    bundlePath: settings.bundlePath,
    dataPath: settings.dataPath,
    entrypoint: settings.entrypoint,
    configCheck:
      settings.configEntrypoint === undefined
        ? undefined
        : {
            entrypoint: settings.configEntrypoint,
            // The default check is optional (custom bundles lack it); a configured one is required.
            required: settings.configEntrypoint !== defaultConfigEntrypoint,
          },
  };
}

/** A loaded, checked policy ready to evaluate. */
export interface ActivePolicy {
  policy: WasmPolicy;
  /** The bundle's data with the operator data merged over it (what the policy sees as data). */
  data: Readonly<Record<string, unknown>>;
  entrypoint: string;
  /**
   * What decided: the bundle's manifest revision (its content digest,
   * `sha256-<16 hex>`, when it was built without one) and, with operator
   * data, `+data.<12 hex of the data's sha256>`, so an edit of PDP_DATA is a
   * new revision.
   */
  revision: string;
  /** sha256 (hex) of everything evaluated: wasm, bundle manifest and data, operator data. Equal digests, same policy. */
  digest: string;
  bundlePath: string;
  dataPath: string | undefined;
  loadedAt: Date;
}

/**
 * Loads a bundle and the operator data, checks entrypoints and builtins, and
 * runs the policy's own configuration check. Refuses (StartupError) rather
 * than serve a policy that would fail or surprise at request time.
 */
export async function loadActivePolicy(source: PolicySource): Promise<ActivePolicy> {
  const options = {
    ...(source.verification === undefined ? {} : { verification: source.verification }),
    ...(source.limits === undefined ? {} : { limits: source.limits }),
  };
  // The two readers end in one assembler; everything after reading is one code path.
  const bundle =
    source.bundleBytes === undefined
      ? await readBundle(source.bundlePath, options)
      : await readBundleBytes(source.bundleBytes, {
          ...options,
          origin: `bundle service ${source.bundlePath}`,
        });
  const overlay = source.dataPath === undefined ? {} : await readDataFile(source.dataPath);
  const data = mergeData(bundle.data, overlay);

  const checkEntrypoint = source.configCheck?.entrypoint;
  const required = [source.entrypoint];
  if (source.configCheck?.required === true && checkEntrypoint !== undefined) {
    required.push(checkEntrypoint);
  }
  const policy = await WasmPolicy.load(bundle.wasm, data, required, source.bundlePath);

  if (checkEntrypoint !== undefined && policy.hasEntrypoint(checkEntrypoint)) {
    const problems = configProblems(policy, checkEntrypoint);
    if (problems.length > 0) {
      const origin =
        source.dataPath !== undefined
          ? `PDP_DATA ${source.dataPath}`
          : source.bundleBytes === undefined
            ? `PDP_BUNDLE ${source.bundlePath}`
            : `bundle service ${source.bundlePath}`;
      throw new StartupError(
        "policy_config_invalid",
        problems.map((p) => `${origin}: ${p}`),
      );
    }
  }

  const bundleDigest = createHash("sha256")
    .update(bundle.wasm)
    .update(JSON.stringify(bundle.manifest))
    .update(JSON.stringify(bundle.data))
    .digest("hex");
  const dataDigest =
    source.dataPath === undefined
      ? undefined
      : createHash("sha256").update(JSON.stringify(overlay)).digest("hex");
  const bundleRevision =
    bundle.manifest.revision === ""
      ? `sha256-${bundleDigest.slice(0, 16)}`
      : bundle.manifest.revision;
  return {
    policy,
    data,
    entrypoint: source.entrypoint,
    revision:
      dataDigest === undefined
        ? bundleRevision
        : `${bundleRevision}+data.${dataDigest.slice(0, 12)}`,
    digest: createHash("sha256")
      .update(bundleDigest)
      .update(dataDigest ?? "")
      .digest("hex"),
    bundlePath: source.bundlePath,
    dataPath: source.dataPath,
    loadedAt: new Date(),
  };
}

function configProblems(policy: WasmPolicy, entrypoint: string): string[] {
  let outcome;
  try {
    outcome = policy.evaluate(entrypoint, {});
  } catch (error) {
    return [`${entrypoint} failed: ${error instanceof Error ? error.message : String(error)}`];
  }
  if (!outcome.defined) return [];
  const value = outcome.value;
  if (!Array.isArray(value)) {
    return [`${entrypoint} must answer a list of strings, got ${JSON.stringify(value)}`];
  }
  return value.map((item) => (typeof item === "string" ? item : JSON.stringify(item)));
}

/**
 * An active policy as it crosses to a worker thread: everything but the
 * instance, with the compiled module (structured-clonable) in its place, so a
 * worker instantiates what the coordinating thread compiled and checked.
 */
export type PolicySnapshot = Omit<ActivePolicy, "policy"> & { module: WebAssembly.Module };

export function policySnapshot(active: ActivePolicy): PolicySnapshot {
  const { policy, ...rest } = active;
  return { ...rest, module: policy.module };
}

/** A worker's own instance of a snapshot's module, with the snapshot's data set. */
export async function instantiateSnapshot(snapshot: PolicySnapshot): Promise<ActivePolicy> {
  const { module, ...rest } = snapshot;
  // The entrypoints and the configuration check were checked where it was compiled.
  const policy = await WasmPolicy.load(module, rest.data, [rest.entrypoint], rest.bundlePath);
  return { ...rest, policy };
}
