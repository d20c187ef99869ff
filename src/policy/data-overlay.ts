import { readFile } from "node:fs/promises";
import { extname } from "node:path";
import { parseYamlDocument } from "../config/yaml-document.ts";
import { StartupError } from "../errors.ts";

/** A JSON object as policy data. */
export type DataDocument = Record<string, unknown>;

/**
 * Deep-merges `overlay` onto `base` with the semantics of Rego's
 * `object.union`: objects merge key by key, every other value (arrays,
 * scalars, null) replaces. Inputs are not modified. Keys are defined, never
 * assigned, so a `__proto__` key cannot reach a prototype.
 */
export function mergeData(base: DataDocument, overlay: DataDocument): DataDocument {
  const merged: DataDocument = {};
  for (const [key, value] of Object.entries(base)) define(merged, key, value);
  for (const [key, value] of Object.entries(overlay)) {
    const current = merged[key];
    define(merged, key, isObject(current) && isObject(value) ? mergeData(current, value) : value);
  }
  return merged;
}

function define(target: DataDocument, key: string, value: unknown): void {
  Object.defineProperty(target, key, {
    value,
    enumerable: true,
    writable: true,
    configurable: true,
  });
}

function isObject(value: unknown): value is DataDocument {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Reads the operator's data file (JSON, or YAML for `.yaml`/`.yml`). Its top
 * level must be an object; it is merged over the bundle's data.
 */
export async function readDataFile(path: string): Promise<DataDocument> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    throw new StartupError("data_invalid", [`PDP_DATA ${path}: ${describe(error)}`]);
  }
  let parsed: unknown;
  try {
    const extension = extname(path).toLowerCase();
    parsed =
      extension === ".yaml" || extension === ".yml" ? parseYamlDocument(text) : JSON.parse(text);
  } catch (error) {
    throw new StartupError("data_invalid", [`PDP_DATA ${path}: ${describe(error)}`]);
  }
  if (!isObject(parsed)) {
    throw new StartupError("data_invalid", [
      `PDP_DATA ${path}: the top level must be a mapping of keys (e.g. tools, risk_classes)`,
    ]);
  }
  return parsed;
}

function describe(error: unknown): string {
  return error instanceof Error ? (error.message.split("\n")[0] ?? error.message) : String(error);
}
