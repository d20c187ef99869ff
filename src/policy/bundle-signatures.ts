import {
  X509Certificate,
  createHash,
  createPublicKey,
  createSecretKey,
  type KeyObject,
  type webcrypto,
} from "node:crypto";
import { compactVerify, decodeProtectedHeader, errors as joseErrors, type JWK } from "jose";
import { parse as parseYaml } from "yaml";
import { BundleRefusal, StartupError, type BundleRefusalCode } from "../errors.ts";
import type { BundleFiles } from "./bundle-archive.ts";
// The list lives with the configuration schema (policy.signing.keys[].algorithm), which may not import policy/.
import { bundleSignatureAlgorithms } from "../config/schema.ts";

export { bundleSignatureAlgorithms };

export type BundleSignatureAlgorithm = (typeof bundleSignatureAlgorithms)[number];

/** One verification key, as OPA's `keys.<id>` configures it. */
export interface BundleVerificationKey {
  /**
   * A public key (PEM: SPKI, PKCS#1 or an X.509 certificate; a JWK; a
   * KeyObject or CryptoKey), or for HS* the shared secret (string or bytes).
   */
  key: KeyObject | webcrypto.CryptoKey | JWK | string | Uint8Array;
  algorithm: BundleSignatureAlgorithm;
  /** The scope this key signs for, used when the verification sets none (OPA's `keys.<id>.scope`). */
  scope?: string;
}

/** How signed bundles are checked (OPA's `bundles.<name>.signing`). */
export interface BundleVerificationOptions {
  keys: ReadonlyMap<string, BundleVerificationKey>;
  /** The key to verify with; overrides the JWT's `kid` (OPA's `signing.keyid`). */
  keyId?: string;
  /** The scope the JWT must carry (OPA's `signing.scope`); no scope means the JWT has none either. */
  scope?: string;
  /** Glob patterns (Go's filepath.Match) of files left out of the check (OPA's `signing.exclude_files`). */
  exclude?: readonly string[];
}

/** What a successful verification established. */
export interface VerifiedSignature {
  keyId: string;
  algorithm: BundleSignatureAlgorithm;
  /** How many of the bundle's files were checked against the signature (excluded ones are not). */
  files: number;
}

const signaturesPath = "/.signatures.json";

/** File hash algorithms accepted in the JWT's `files` list (OPA's, without MD5 and SHA-1). */
const hashAlgorithms: ReadonlyMap<string, string> = new Map([
  ["SHA-224", "sha224"],
  ["SHA-256", "sha256"],
  ["SHA-384", "sha384"],
  ["SHA-512", "sha512"],
  ["SHA-512-224", "sha512-224"],
  ["SHA-512-256", "sha512-256"],
]);

/** Files OPA hashes as parsed JSON rather than bytes (bundle.IsStructuredDoc). */
const structuredNames = new Set(["data.json", "data.yaml", ".signatures.json", ".manifest"]);

/**
 * Checks a bundle's `.signatures.json` as OPA does: exactly one JWT, verified
 * with the configured key (the configured `keyId` over the JWT's `kid` over
 * the deprecated `keyid` claim) and only that key's algorithm; the `scope`
 * claim equal to the configured one; and the JWT's `files` list matching the
 * bundle exactly, every hash right. A bundle without signatures is refused:
 * the caller verifies only when keys are configured.
 */
export async function verifyBundleSignatures(
  files: BundleFiles,
  options: BundleVerificationOptions,
  origin: string,
): Promise<VerifiedSignature> {
  const refuse = (code: BundleRefusalCode, problem: string): BundleRefusal =>
    new BundleRefusal(code, [`${origin}: ${problem}`]);

  const raw = files.get(signaturesPath);
  if (raw === undefined) {
    throw refuse("bundle_unsigned", "has no .signatures.json and signing keys are configured");
  }
  const token = readSignaturesFile(raw, refuse);

  let header: ReturnType<typeof decodeProtectedHeader>;
  let unverifiedClaims: Record<string, unknown>;
  try {
    header = decodeProtectedHeader(token);
    unverifiedClaims = readClaims(
      Buffer.from(token.split(".")[1] ?? "", "base64url").toString("utf8"),
    );
  } catch (error) {
    throw refuse("bundle_signature_invalid", `the JWT cannot be read: ${message(error)}`);
  }

  const keyId =
    options.keyId ??
    (typeof header.kid === "string" ? header.kid : undefined) ??
    (typeof unverifiedClaims.keyid === "string" ? unverifiedClaims.keyid : undefined);
  if (keyId === undefined || keyId === "") {
    throw refuse(
      "bundle_signature_key_unknown",
      "the JWT names no key (no kid) and no key id is configured",
    );
  }
  const key = options.keys.get(keyId);
  if (key === undefined) {
    throw refuse("bundle_signature_key_unknown", `no verification key ${JSON.stringify(keyId)}`);
  }

  let claims: Record<string, unknown>;
  try {
    const verified = await compactVerify(token, importVerificationKey(key), {
      algorithms: [key.algorithm],
    });
    claims = readClaims(new TextDecoder().decode(verified.payload));
  } catch (error) {
    if (error instanceof joseErrors.JOSEAlgNotAllowed) {
      throw refuse(
        "bundle_signature_algorithm",
        `the JWT is signed with ${String(header.alg)}; key ${JSON.stringify(keyId)} allows ${key.algorithm} only`,
      );
    }
    throw refuse(
      "bundle_signature_invalid",
      `the signature does not verify with key ${JSON.stringify(keyId)}: ${message(error)}`,
    );
  }

  const expectedScope = options.scope ?? key.scope ?? "";
  const scope = claims.scope ?? "";
  if (scope !== expectedScope) {
    throw refuse(
      "bundle_signature_scope",
      `the JWT's scope is ${JSON.stringify(scope)}, expected ${JSON.stringify(expectedScope)}`,
    );
  }

  const signed = readSignedFiles(claims.files, refuse);
  let checked = 0;
  const excluded = (options.exclude ?? []).map(globToRegExp);
  const problems: { code: BundleRefusalCode; problem: string }[] = [];
  for (const path of [...files.keys()].sort()) {
    if (path === signaturesPath) continue;
    const name = path.slice(1);
    if (excluded.some((pattern) => pattern.test(name))) {
      signed.delete(name);
      continue;
    }
    const entry = signed.get(name);
    if (entry === undefined) {
      problems.push({ code: "bundle_file_unexpected", problem: `${name} is not in the signature` });
      continue;
    }
    signed.delete(name);
    checked += 1;
    const digest = hashBundleFile(
      name,
      files.get(path) ?? Buffer.alloc(0),
      entry.algorithm,
      origin,
    );
    if (digest !== entry.hash.toLowerCase()) {
      problems.push({
        code: "bundle_file_hash_mismatch",
        problem: `${name}: ${entry.algorithm} digest is ${digest}, the signature says ${entry.hash}`,
      });
    }
  }
  for (const name of signed.keys()) {
    problems.push({
      code: "bundle_file_missing",
      problem: `${name} is in the signature but not in the bundle`,
    });
  }
  const first = problems[0];
  if (first !== undefined) {
    throw new BundleRefusal(
      first.code,
      problems.map((p) => `${origin}: ${p.problem}`),
    );
  }
  return { keyId, algorithm: key.algorithm, files: checked };
}

/**
 * Turns configured key material into a key jose can verify with; throws
 * when it cannot (configuration checks every key up front with
 * `bundleVerificationProblems`).
 */
export function importVerificationKey(key: BundleVerificationKey): KeyObject | webcrypto.CryptoKey {
  const { key: material, algorithm } = key;
  if (algorithm.startsWith("HS")) {
    if (typeof material === "string") return createSecretKey(Buffer.from(material, "utf8"));
    if (material instanceof Uint8Array) return createSecretKey(material);
  }
  if (typeof material === "string") {
    if (material.includes("BEGIN CERTIFICATE")) return new X509Certificate(material).publicKey;
    return createPublicKey(material);
  }
  if (material instanceof Uint8Array) return createPublicKey({ key: Buffer.from(material) });
  if (isKeyObjectOrCryptoKey(material)) return material;
  if (material.kty === "oct" && typeof material.k === "string") {
    return createSecretKey(Buffer.from(material.k, "base64url"));
  }
  return createPublicKey({ key: material, format: "jwk" });
}

/** Every configured key that cannot be used, each naming its key id. */
export function bundleVerificationProblems(options: BundleVerificationOptions): string[] {
  const problems: string[] = [];
  for (const [id, key] of options.keys) {
    if (!(bundleSignatureAlgorithms as readonly string[]).includes(key.algorithm)) {
      problems.push(
        `key ${id}: algorithm ${key.algorithm} is not one of ${bundleSignatureAlgorithms.join(", ")}`,
      );
      continue;
    }
    try {
      importVerificationKey(key);
    } catch (error) {
      problems.push(`key ${id}: ${message(error)}`);
    }
  }
  for (const pattern of options.exclude ?? []) {
    try {
      globToRegExp(pattern);
    } catch (error) {
      problems.push(`exclude_files ${pattern}: ${message(error)}`);
    }
  }
  if (options.keyId !== undefined && !options.keys.has(options.keyId)) {
    problems.push(`keyid ${options.keyId}: no such key`);
  }
  return problems;
}

/**
 * The digest OPA signs for a file: of the bytes, or for a structured
 * document (data.json, data.yaml, .manifest) of its canonical JSON encoding,
 * so whitespace and key order do not matter.
 */
export function hashBundleFile(
  name: string,
  content: Buffer,
  algorithm: string,
  origin: string,
): string {
  const nodeAlgorithm = hashAlgorithms.get(algorithm);
  if (nodeAlgorithm === undefined) {
    throw new BundleRefusal("bundle_signature_invalid", [
      `${origin}: ${name} is hashed with ${algorithm}; accepted: ${[...hashAlgorithms.keys()].join(", ")}`,
    ]);
  }
  const hash = createHash(nodeAlgorithm);
  const base = name.slice(name.lastIndexOf("/") + 1);
  if (!structuredNames.has(base)) return hash.update(content).digest("hex");
  let value: unknown;
  try {
    value = base.endsWith(".yaml")
      ? parseYaml(content.toString("utf8"))
      : JSON.parse(content.toString("utf8"), keepNumberSource);
  } catch (error) {
    throw new StartupError("bundle_invalid", [`${origin}: ${name}: ${message(error)}`]);
  }
  return hash.update(canonicalJson(value), "utf8").digest("hex");
}

/** A JSON number as written: OPA decodes numbers as json.Number and hashes their text. */
class NumberLiteral {
  readonly text: string;

  constructor(text: string) {
    this.text = text;
  }
}

function keepNumberSource(
  this: unknown,
  _key: string,
  value: unknown,
  context?: { source?: string },
): unknown {
  if (typeof value === "number" && context?.source !== undefined)
    return new NumberLiteral(context.source);
  return value;
}

/**
 * The canonical encoding OPA hashes (bundle/hash.go): object keys sorted by
 * their UTF-8 bytes, no whitespace, strings escaped as Go's encoding/json
 * does without HTML escaping, numbers as written.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || value === undefined) return "null";
  if (value instanceof NumberLiteral) return value.text;
  if (typeof value === "number") return JSON.stringify(value);
  if (typeof value === "boolean") return value ? "true" : "false";
  if (typeof value === "string") return goString(value);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (typeof value === "object") {
    const record = value as Record<string, unknown>;
    const keys = Object.keys(record).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    return `{${keys.map((k) => `${goString(k)}:${canonicalJson(record[k])}`).join(",")}}`;
  }
  throw new Error(`cannot encode a ${typeof value} as JSON`);
}

/**
 * A string as Go's encoder writes it: like JSON.stringify, except that
 * U+2028 and U+2029 are escaped and a lone surrogate (which Go cannot hold)
 * becomes U+FFFD.
 */
function goString(value: string): string {
  return JSON.stringify(value.toWellFormed())
    .replaceAll("\u2028", "\\u2028")
    .replaceAll("\u2029", "\\u2029");
}

function readSignaturesFile(
  raw: Buffer,
  refuse: (code: BundleRefusalCode, problem: string) => BundleRefusal,
): string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw.toString("utf8"));
  } catch (error) {
    throw refuse("bundle_signature_invalid", `.signatures.json: ${message(error)}`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw refuse("bundle_signature_invalid", ".signatures.json must hold a JSON object");
  }
  const { signatures, plugin } = parsed as { signatures?: unknown; plugin?: unknown };
  // opa build writes "_default", the id of its built-in verifier.
  if (plugin !== undefined && plugin !== "" && plugin !== "_default") {
    throw refuse(
      "bundle_signature_invalid",
      `.signatures.json names signing plugin ${JSON.stringify(plugin)}; only OPA's default signature format is supported`,
    );
  }
  if (!Array.isArray(signatures) || signatures.length !== 1 || typeof signatures[0] !== "string") {
    throw refuse(
      "bundle_signature_invalid",
      ".signatures.json must list exactly one JWT in signatures",
    );
  }
  return signatures[0];
}

function readClaims(json: string): Record<string, unknown> {
  const parsed: unknown = JSON.parse(json);
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new Error("the JWT payload is not a JSON object");
  }
  return parsed as Record<string, unknown>;
}

interface SignedFile {
  hash: string;
  algorithm: string;
}

function readSignedFiles(
  value: unknown,
  refuse: (code: BundleRefusalCode, problem: string) => BundleRefusal,
): Map<string, SignedFile> {
  if (!Array.isArray(value)) throw refuse("bundle_signature_invalid", "the JWT has no files list");
  const signed = new Map<string, SignedFile>();
  for (const item of value as unknown[]) {
    const file = item as { name?: unknown; hash?: unknown; algorithm?: unknown } | null;
    if (
      typeof file !== "object" ||
      file === null ||
      typeof file.name !== "string" ||
      typeof file.hash !== "string" ||
      typeof file.algorithm !== "string"
    ) {
      throw refuse(
        "bundle_signature_invalid",
        "every entry of the JWT's files list needs a string name, hash and algorithm",
      );
    }
    const name = file.name.replace(/^\/+/, "");
    if (signed.has(name)) {
      throw refuse("bundle_signature_invalid", `the JWT lists ${name} twice`);
    }
    signed.set(name, { hash: file.hash, algorithm: file.algorithm });
  }
  return signed;
}

/** Go's filepath.Match syntax: `*` and `?` never cross `/`, `[...]` classes with `^` negation. */
function globToRegExp(pattern: string): RegExp {
  let source = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern.charAt(i);
    if (c === "*") source += "[^/]*";
    else if (c === "?") source += "[^/]";
    else if (c === "\\" && i + 1 < pattern.length) source += escapeRegExp(pattern.charAt(++i));
    else if (c === "[") {
      const end = pattern.indexOf("]", i + 1);
      if (end === -1) {
        source += "\\[";
        continue;
      }
      let body = pattern.slice(i + 1, end);
      if (body.startsWith("^")) body = `^${body.slice(1).replaceAll("\\", "\\\\")}`;
      else body = body.replaceAll("\\", "\\\\");
      source += `(?![/])[${body}]`;
      i = end;
    } else source += escapeRegExp(c);
  }
  return new RegExp(`^${source}$`);
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

function isKeyObjectOrCryptoKey(value: object): value is KeyObject | webcrypto.CryptoKey {
  return "type" in value && typeof value.type === "string" && !("kty" in value);
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
