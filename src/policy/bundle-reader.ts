import { readFile, readdir, stat } from "node:fs/promises";
import { join, relative, sep } from "node:path";
import { Parser, type ReadEntry } from "tar";
import { parse as parseYaml } from "yaml";
import { StartupError } from "../errors.js";
import { mergeData, type DataDocument } from "./data-overlay.js";

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
}

/** Bundles larger than this are refused: a policy is kilobytes to a few megabytes. */
const maxBundleBytes = 64 * 1024 * 1024;

/**
 * Reads an OPA bundle from a `.tar.gz` file or from a directory laid out the
 * same way. Data files (`data.json`, `data.yaml`) are placed at their
 * directory's path, as OPA does.
 */
export async function readBundle(path: string): Promise<Bundle> {
  let files: Map<string, Buffer>;
  try {
    const info = await stat(path);
    files = info.isDirectory() ? await readDirectory(path) : await readTarball(path);
  } catch (error) {
    if (error instanceof StartupError) throw error;
    throw new StartupError("bundle_unreadable", [
      `PDP_BUNDLE ${path}: ${error instanceof Error ? error.message : String(error)}`,
    ]);
  }
  return assemble(path, files);
}

async function readDirectory(dir: string): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  for (const entry of entries) {
    if (!entry.isFile()) continue;
    const full = join(entry.parentPath, entry.name);
    files.set(`/${relative(dir, full).split(sep).join("/")}`, await readFile(full));
  }
  return files;
}

async function readTarball(file: string): Promise<Map<string, Buffer>> {
  const archive = await readFile(file);
  const files = new Map<string, Buffer>();
  let total = 0;
  await new Promise<void>((resolve, reject) => {
    const parser = new Parser({
      strict: true,
      onReadEntry: (entry: ReadEntry) => {
        if (entry.type !== "File") {
          entry.resume();
          return;
        }
        const chunks: Buffer[] = [];
        entry.on("data", (chunk: Buffer) => {
          total += chunk.length;
          if (total > maxBundleBytes) {
            reject(new Error(`bundle expands beyond ${maxBundleBytes} bytes`));
            parser.abort(new Error("too large"));
            return;
          }
          chunks.push(chunk);
        });
        entry.on("end", () => {
          files.set(normalizeEntryPath(entry.path), Buffer.concat(chunks));
        });
      },
    });
    parser.on("error", reject);
    parser.on("abort", reject);
    parser.on("end", () => {
      resolve();
    });
    parser.end(archive);
  });
  return files;
}

function normalizeEntryPath(path: string): string {
  const trimmed = path.replace(/^\.?\/+/, "");
  return `/${trimmed}`;
}

function assemble(path: string, files: Map<string, Buffer>): Bundle {
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
          : parseYaml(content.toString("utf8"));
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
      problems.map((p) => `PDP_BUNDLE ${path}: ${p}`),
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
