import { randomUUID, webcrypto } from "node:crypto";
import {
  CompactEncrypt,
  SignJWT,
  exportJWK,
  exportSPKI,
  generateKeyPair,
  type CryptoKey,
  type JWK,
} from "jose";

/** The asymmetric algorithms the tests sign with. */
export type SigningAlg = "RS256" | "PS256" | "ES256" | "EdDSA";

export const signingAlgs: readonly SigningAlg[] = ["RS256", "PS256", "ES256", "EdDSA"];

/** A key pair for one algorithm, with its public JWK as a JWKS would publish it. */
export interface TestKey {
  alg: SigningAlg;
  kid: string;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  /** Public JWK with kid, alg and use "sig". */
  publicJwk: JWK;
}

/** Generates an extractable key pair for `alg`; `kid` defaults to a fresh random one. */
export async function generateTestKey(alg: SigningAlg, kid?: string): Promise<TestKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const keyId = kid ?? `${alg.toLowerCase()}-${randomUUID()}`;
  const publicJwk: JWK = { ...(await exportJWK(publicKey)), kid: keyId, alg, use: "sig" };
  return { alg, kid: keyId, privateKey, publicKey, publicJwk };
}

/** The public key as PEM (SPKI). */
export function publicPem(key: TestKey): Promise<string> {
  return exportSPKI(key.publicKey);
}

export interface MintOptions {
  /**
   * Protected-header parameters merged over `{alg, kid, typ: "JWT"}`; a value
   * of undefined removes the parameter (JSON drops it).
   */
  header?: Record<string, unknown>;
  /** Extension parameters the signer treats as understood (jose refuses unknown `crit` otherwise). */
  crit?: Record<string, boolean>;
}

/**
 * Signs `claims` exactly as given (no claim is added; an undefined value is
 * left out) with `key`.
 */
export function mint(
  key: TestKey,
  claims: Record<string, unknown>,
  options: MintOptions = {},
): Promise<string> {
  const header = { alg: key.alg, kid: key.kid, typ: "JWT", ...options.header };
  return new SignJWT(claims)
    .setProtectedHeader(header)
    .sign(key.privateKey, options.crit === undefined ? {} : { crit: options.crit });
}

/** base64url of a JSON value, for hand-built tokens. */
export function b64json(value: unknown): string {
  return Buffer.from(JSON.stringify(value), "utf8").toString("base64url");
}

/** A hand-built compact JWS: header.payload.signature, the signature given as is. */
export function handBuilt(
  header: Record<string, unknown>,
  claims: Record<string, unknown>,
  signature = "",
): string {
  return `${b64json(header)}.${b64json(claims)}.${signature}`;
}

const subtleSigning: Record<
  SigningAlg,
  webcrypto.AlgorithmIdentifier | webcrypto.RsaPssParams | webcrypto.EcdsaParams
> = {
  RS256: { name: "RSASSA-PKCS1-v1_5" },
  PS256: { name: "RSA-PSS", saltLength: 32 },
  ES256: { name: "ECDSA", hash: "SHA-256" },
  EdDSA: { name: "Ed25519" },
};

/**
 * Signs any header and claims with WebCrypto directly, bypassing jose's checks
 * (which refuse, say, an empty `crit`): a correctly signed token whose header
 * only the verifier gets to judge.
 */
export async function signRaw(
  key: TestKey,
  header: Record<string, unknown>,
  claims: Record<string, unknown>,
): Promise<string> {
  const input = `${b64json(header)}.${b64json(claims)}`;
  const signature = await webcrypto.subtle.sign(
    subtleSigning[key.alg],
    key.privateKey,
    Buffer.from(input, "ascii"),
  );
  return `${input}.${Buffer.from(signature).toString("base64url")}`;
}

/** A compact JWE (five parts) of `claims`, encrypted to a fresh RSA-OAEP-256 key. */
export async function encryptedToken(claims: Record<string, unknown>): Promise<string> {
  const { publicKey } = await generateKeyPair("RSA-OAEP-256");
  return new CompactEncrypt(Buffer.from(JSON.stringify(claims), "utf8"))
    .setProtectedHeader({ alg: "RSA-OAEP-256", enc: "A256GCM", typ: "JWT", cty: "JWT" })
    .encrypt(publicKey);
}

/** The signature part of a compact JWS. */
export function signaturePart(token: string): string {
  return token.split(".")[2] ?? "";
}
