import { readFile, readdir, stat } from "node:fs/promises";
import { join, relative, sep } from "node:path";
import { parseYamlDocument } from "../config/yaml-document.ts";
import { BundleRefusal, StartupError } from "../errors.ts";
import {
  defaultBundleLimits,
  readBundleArchive,
  type BundleFiles,
  type BundleLimits,
} from "./bundle-archive.ts";
import {
  verifyBundleSignatures,
  type BundleVerificationOptions,
  type VerifiedSignature,
} from "./bundle-signatures.ts";
import { mergeData, type DataDocument } from "./data-overlay.ts";

/** The parts of an OPA bundle manifest (`/.manifest`) the PDP uses. */
export interface BundleManifest {
  revision: string;
  roots: string[];
  wasm: { entrypoint: string; module: string }[];
}

/** An OPA bundle as `opa build -t wasm` writes it, read into memory. */
export interface Bundle {
  manifest: BundleManifest;
  data: DataDocument;
  wasm: Uint8Array;
  /** The signature that was verified, when verification was asked for. */
  signature: VerifiedSignature | undefined;
}

/** How a bundle is read: limits on the archive and, when keys are configured, signature checks. */
export interface BundleReadOptions {
  /** Overrides of `defaultBundleLimits`. */
  limits?: Partial<BundleLimits>;
  /** Verify `.signatures.json` against these keys; an unsigned bundle is then refused. */
  verification?: BundleVerificationOptions;
  /** How problems name the source; defaults to `PDP_BUNDLE <path>` or `bundle`. */
  origin?: string;
}

/**
 * Reads an OPA bundle from a `.tar.gz` file or from a directory laid out the
 * same way. Data files (`data.json`, `data.yaml`) are placed at their
 * directory's path, as OPA does.
 */
export async function readBundle(path: string, options: BundleReadOptions = {}): Promise<Bundle> {
  const origin = options.origin ?? `PDP_BUNDLE ${path}`;
  const limits = { ...defaultBundleLimits, ...options.limits };
  let files: BundleFiles;
  try {
    const info = await stat(path);
    if (info.isDirectory()) {
      files = await readDirectory(path, limits, origin);
    } else {
      if (info.size > limits.maxCompressedBytes) {
        throw new BundleRefusal("bundle_too_large", [
          `${origin}: archive is ${info.size} bytes, more than the limit of ${limits.maxCompressedBytes}`,
        ]);
      }
      files = await readBundleArchive(await readFile(path), limits, origin);
    }
  } catch (error) {
    if (error instanceof StartupError) throw error;
    throw new StartupError("bundle_unreadable", [
      `${origin}: ${error instanceof Error ? error.message : String(error)}`,
    ]);
  }
  return assembleBundle(files, origin, options.verification);
}

/**
 * Reads an OPA bundle from the bytes of its `.tar.gz` (a download that never
 * touches the disk), with the same checks as `readBundle`.
 */
export async function readBundleBytes(
  archive: Uint8Array,
  options: BundleReadOptions = {},
): Promise<Bundle> {
  const origin = options.origin ?? "bundle";
  const limits = { ...defaultBundleLimits, ...options.limits };
  const files = await readBundleArchive(archive, limits, origin);
  return assembleBundle(files, origin, options.verification);
}

/**
 * A directory is held to the same limits as an archive. Only regular files
 * count: a symbolic link is skipped, never followed, so it cannot reach
 * outside the directory.
 */
async function readDirectory(
  dir: string,
  limits: BundleLimits,
  origin: string,
): Promise<BundleFiles> {
  const files: BundleFiles = new Map();
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  if (entries.length > limits.maxFiles) {
    throw new BundleRefusal("bundle_too_many_files", [
      `${origin}: more than ${limits.maxFiles} entries`,
    ]);
  }
  let total = 0;
  for (const entry of entries) {
    if (!entry.isFile()) continue;
    const full = join(entry.parentPath, entry.name);
    const name = `/${relative(dir, full).split(sep).join("/")}`;
    const { size } = await stat(full);
    if (size > limits.maxFileBytes) {
      throw new BundleRefusal("bundle_file_too_large", [
        `${origin}: ${name} is ${size} bytes, more than the limit of ${limits.maxFileBytes}`,
      ]);
    }
    total += size;
    if (total > limits.maxUncompressedBytes) {
      throw new BundleRefusal("bundle_too_large", [
        `${origin}: files add up to more than the limit of ${limits.maxUncompressedBytes} bytes`,
      ]);
    }
    files.set(name, await readFile(full));
  }
  return files;
}

/** The one assembler both readers end in: signatures first, then manifest, wasm and data. */
async function assembleBundle(
  files: BundleFiles,
  origin: string,
  verification: BundleVerificationOptions | undefined,
): Promise<Bundle> {
  const signature =
    verification === undefined
      ? undefined
      : await verifyBundleSignatures(files, verification, origin);
  return { ...assemble(origin, files), signature };
}

function assemble(origin: string, files: BundleFiles): Omit<Bundle, "signature"> {
  const problems: string[] = [];
  const manifest = readManifest(files.get("/.manifest"), problems);

  const modules =
    manifest.wasm.length > 0 ? [...new Set(manifest.wasm.map((w) => w.module))] : ["/policy.wasm"];
  if (modules.length !== 1) {
    problems.push(`manifest lists ${modules.length} wasm modules; exactly one is supported`);
  }
  const modulePath = modules[0] ?? "/policy.wasm";
  const wasm = files.get(modulePath);
  if (wasm === undefined)
    problems.push(`${modulePath} is missing (build the bundle with opa build -t wasm)`);

  let data: DataDocument = {};
  for (const [name, content] of [...files.entries()].sort(([a], [b]) => a.localeCompare(b))) {
    const match = /^(.*)\/data\.(json|ya?ml)$/.exec(name);
    if (match === null) continue;
    try {
      const parsed: unknown =
        match[2] === "json"
          ? JSON.parse(content.toString("utf8"))
          : parseYamlDocument(content.toString("utf8"));
      if (!isDocument(parsed)) {
        problems.push(`${name}: must hold a JSON object`);
        continue;
      }
      data = mergeData(data, placeAt(match[1] ?? "", parsed));
    } catch (error) {
      problems.push(`${name}: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  if (problems.length > 0 || wasm === undefined) {
    throw new StartupError(
      "bundle_invalid",
      problems.map((p) => `${origin}: ${p}`),
    );
  }
  return { manifest, data, wasm: new Uint8Array(wasm) };
}

function readManifest(raw: Buffer | undefined, problems: string[]): BundleManifest {
  const manifest: BundleManifest = { revision: "", roots: [""], wasm: [] };
  if (raw === undefined) return manifest;
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw.toString("utf8"));
  } catch (error) {
    problems.push(`/.manifest: ${error instanceof Error ? error.message : String(error)}`);
    return manifest;
  }
  if (!isDocument(parsed)) {
    problems.push("/.manifest: must hold a JSON object");
    return manifest;
  }
  if (typeof parsed.revision === "string") manifest.revision = parsed.revision;
  if (Array.isArray(parsed.roots))
    manifest.roots = parsed.roots.filter((r) => typeof r === "string");
  if (Array.isArray(parsed.wasm)) {
    for (const item of parsed.wasm as unknown[]) {
      if (
        isDocument(item) &&
        typeof item.entrypoint === "string" &&
        typeof item.module === "string"
      ) {
        manifest.wasm.push({ entrypoint: item.entrypoint, module: item.module });
      } else {
        problems.push("/.manifest: every wasm entry needs a string entrypoint and module");
      }
    }
  }
  return manifest;
}

function placeAt(dir: string, value: DataDocument): DataDocument {
  const segments = dir.split("/").filter((s) => s.length > 0);
  let placed: DataDocument = value;
  for (const segment of segments.reverse()) placed = { [segment]: placed };
  return placed;
}

function isDocument(value: unknown): value is DataDocument {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
