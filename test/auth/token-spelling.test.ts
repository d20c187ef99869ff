/**
 * One token, one spelling. Real tokens signed by test keys are respelled the
 * ways lenient base64url decoders forgive (`=` padding, whitespace inside,
 * non-zero unused bits in a segment's last character, the standard base64
 * alphabet): each respelling decodes to the very same bytes, so its signature
 * would verify, yet it is refused as token_malformed before any key is looked
 * up. The verifier's clock is frozen; the tokens are minted relative to it.
 */
import assert from "node:assert/strict";
import { webcrypto } from "node:crypto";
import { before, describe, test } from "node:test";
import type { JWTVerifyGetKey } from "jose";
import { JwtTokenVerifier, type IssuerPolicy } from "../../src/auth/jwt-verifier.ts";
import { LocalJwksKeySource } from "../../src/auth/key-sources.ts";
import { TokenError } from "../../src/errors.ts";
import { requireCanonicalSpelling } from "../../src/auth/token-spelling.ts";
import {
  generateTestKey,
  mint,
  signingAlgs,
  type SigningAlg,
  type TestKey,
} from "../support/tokens.ts";

const issuer = "https://idp.test";
const audience = "https://mcp.test/files";
const nowMs = Date.UTC(2026, 0, 15, 12, 0, 0);
const nowS = Math.floor(nowMs / 1000);

const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/** The bytes a lenient decoder (node's Buffer: padding, whitespace, unused bits ignored) reads. */
function leniently(segment: string): Buffer {
  return Buffer.from(
    segment.replace(/[+/]/g, (c) => (c === "+" ? "-" : "_")),
    "base64url",
  );
}

/** The token with segment `index` replaced. */
function withSegment(token: string, index: number, segment: string): string {
  const parts = token.split(".");
  parts[index] = segment;
  return parts.join(".");
}

interface Respelling {
  name: string;
  token: string;
  segment: number;
}

/** Every respelling of `token` this test knows, each decoding to the same bytes. */
function respellings(token: string): Respelling[] {
  const found: Respelling[] = [];
  token.split(".").forEach((segment, index) => {
    const add = (name: string, respelt: string) => {
      found.push({ name, token: withSegment(token, index, respelt), segment: index });
    };
    const remainder = segment.length % 4;
    if (remainder !== 0) add("padded with =", segment + "=".repeat(4 - remainder));
    add("followed by ==", `${segment}==`);
    const middle = Math.floor(segment.length / 2);
    for (const [label, space] of [
      ["a space", " "],
      ["a tab", "\t"],
      ["a newline", "\n"],
      ["CR LF", "\r\n"],
    ] as const) {
      add(`with ${label} inside`, `${segment.slice(0, middle)}${space}${segment.slice(middle)}`);
    }
    // 2 trailing characters leave 4 unused bits, 3 leave 2.
    const unused = remainder === 2 ? [1, 2, 4, 8] : remainder === 3 ? [1, 2] : [];
    const last = alphabet.indexOf(segment.at(-1) ?? "");
    for (const bit of unused) {
      const flipped = `${segment.slice(0, -1)}${alphabet[last ^ bit] ?? ""}`;
      add(`with unused bit ${bit} of its last character set`, flipped);
    }
    if (/[-_]/.test(segment)) {
      add(
        "in the standard base64 alphabet (+ and /)",
        segment.replace(/[-_]/g, (c) => (c === "-" ? "+" : "/")),
      );
    }
  });
  return found;
}

function assertMalformed(run: () => unknown, label: string): void {
  assert.throws(
    run,
    (error: unknown) => {
      assert.ok(error instanceof TokenError, `${label}: a TokenError, got ${String(error)}`);
      assert.equal(error.code, "token_malformed", label);
      return true;
    },
    label,
  );
}

describe("requireCanonicalSpelling", () => {
  test("accepts canonical segments of every length class", () => {
    // Lengths 0, 3 and 2 mod 4; the last characters' unused bits are zero ("0" = 52, "g" = 32, "8" = 60).
    for (const token of ["eyJhbGciOiJSUzI1NiJ9.e30.AAAA", "AA.AAA.AAAA", "Ag.-_8.w_-w"]) {
      requireCanonicalSpelling(token);
    }
  });

  test("refuses an empty segment, whichever it is", () => {
    for (const token of [".e30.AAAA", "eyJ9..AAAA", "eyJhbGciOiJub25lIn0.e30.", ".."]) {
      assertMalformed(() => {
        requireCanonicalSpelling(token);
      }, JSON.stringify(token));
    }
  });

  test("refuses a segment of length 1 mod 4 (no encoding ends with a lone sextet)", () => {
    for (const token of ["A.AA.AA", "AA.AAAAA.AA", "AA.AA.AAAAAAAAA"]) {
      assertMalformed(() => {
        requireCanonicalSpelling(token);
      }, token);
    }
  });

  test("refuses every character outside the unpadded base64url alphabet", () => {
    for (const char of ["=", "+", "/", " ", "\t", "\n", ".", "%", "é", "\u0000", "\u{1F600}"]) {
      const token = `AA.A${char}AA.AAAA`;
      assertMalformed(() => {
        requireCanonicalSpelling(token);
      }, JSON.stringify(char));
    }
  });

  test("refuses non-zero unused bits, accepts the same bytes spelt with them cleared", () => {
    // "AB": B = 0b000001 sets one of the 4 bits past the only byte, so "AB" and "AA" are both 0x00.
    assert.deepEqual(leniently("AB"), leniently("AA"));
    assertMalformed(() => {
      requireCanonicalSpelling("AB.AA.AA");
    }, "AB");
    requireCanonicalSpelling("AA.AA.AA");
    // "AAB": 2 unused bits; "AAA" spells the same two bytes.
    assert.deepEqual(leniently("AAB"), leniently("AAA"));
    assertMalformed(() => {
      requireCanonicalSpelling("AA.AAB.AA");
    }, "AAB");
    // "AQ" (Q = 0b010000) and "AAE" (E = 0b000100) use their last bits for data: canonical.
    requireCanonicalSpelling("AQ.AAE.AA");
  });

  test("refuses anything but three segments", () => {
    for (const token of ["AAAA", "AAAA.AAAA", "AAAA.AAAA.AAAA.AAAA"]) {
      assertMalformed(() => {
        requireCanonicalSpelling(token);
      }, token);
    }
  });

  test("never echoes the token in its message", () => {
    const secret = "c2VjcmV0LXBheWxvYWQ";
    assert.throws(
      () => {
        requireCanonicalSpelling(`AA.${secret} .AA`);
      },
      (error: unknown) => error instanceof TokenError && !error.message.includes(secret),
    );
  });
});

describe("JwtTokenVerifier refuses respelled tokens before any cryptography", () => {
  const keys = new Map<SigningAlg, TestKey>();
  let keyLookups = 0;
  let verifier: JwtTokenVerifier;

  before(async () => {
    for (const alg of signingAlgs) keys.set(alg, await generateTestKey(alg));
    const local = new LocalJwksKeySource({ keys: [...keys.values()].map((key) => key.publicJwk) });
    const counting: JWTVerifyGetKey = (header, token) => {
      keyLookups++;
      return local.getKey(header, token);
    };
    const policy: IssuerPolicy = {
      issuer,
      audiences: [audience],
      algorithms: [...signingAlgs],
      requiredTyp: undefined,
      clockToleranceS: 0,
      maxTokenBytes: 8192,
      keys: { getKey: counting, classify: (error) => local.classify(error) },
      subjectType: { claim: undefined, clientCredentials: "service", default: "user" },
    };
    // No cache: every call is a full verification.
    verifier = new JwtTokenVerifier([policy], 0);
  });

  /**
   * A real token whose header and payload lengths are not multiples of 4 (so
   * every segment has unused bits to flip): a filler claim and header
   * parameter are lengthened until they are.
   */
  async function tokenFor(alg: SigningAlg): Promise<string> {
    const key = keys.get(alg);
    assert.ok(key);
    for (let filler = 0; filler < 12; filler++) {
      const token = await mint(
        key,
        {
          iss: issuer,
          sub: "user-1",
          aud: audience,
          iat: nowS - 60,
          exp: nowS + 600,
          scope: "mcp:read",
          note: "x".repeat(filler),
        },
        { header: { x: "y".repeat(filler % 3) } },
      );
      const [header = "", payload = ""] = token.split(".");
      if (header.length % 4 !== 0 && payload.length % 4 !== 0) return token;
    }
    assert.fail("no filler length gave unaligned segments");
  }

  for (const alg of signingAlgs) {
    test(`${alg}: the canonical token verifies; each respelling is token_malformed`, async () => {
      const token = await tokenFor(alg);
      const verified = await verifier.verify(token, nowMs, audience);
      assert.equal(verified.claims.sub, "user-1");

      const variants = respellings(token);
      for (const segment of [0, 1, 2]) {
        const names = variants.filter((v) => v.segment === segment).map((v) => v.name);
        assert.ok(
          names.some((name) => name.startsWith("with unused bit")),
          `segment ${segment} has unused bits to flip: ${names.join(", ")}`,
        );
      }
      for (const variant of variants) {
        const label = `${alg} segment ${variant.segment} ${variant.name}`;
        assert.notEqual(variant.token, token, label);
        // The same token to a lenient decoder: the same bytes in every segment.
        const original = token.split(".").map(leniently);
        const respelt = variant.token.split(".").map(leniently);
        assert.deepEqual(respelt, original, `${label} decodes to the same bytes`);

        const lookupsBefore = keyLookups;
        await assert.rejects(
          verifier.verify(variant.token, nowMs, audience),
          (error: unknown) => {
            assert.ok(error instanceof TokenError, `${label}: ${String(error)}`);
            assert.equal(error.code, "token_malformed", label);
            return true;
          },
          label,
        );
        assert.equal(keyLookups, lookupsBefore, `${label}: refused before any key lookup`);
      }
    });
  }

  test("a token with padding or spaces is refused even when its signature is valid for that text", async () => {
    // Not a respelling of another token: a signature over a header segment that itself carries padding.
    const key = keys.get("ES256");
    assert.ok(key);
    const token = await tokenFor("ES256");
    const [header = "", payload = ""] = token.split(".");
    const padded = `${header}${"=".repeat((4 - (header.length % 4)) % 4)}`;
    const input = `${padded}.${payload}`;
    const signature = await webcrypto.subtle.sign(
      { name: "ECDSA", hash: "SHA-256" },
      key.privateKey,
      Buffer.from(input, "ascii"),
    );
    const signed = `${input}.${Buffer.from(signature).toString("base64url")}`;
    await assert.rejects(verifier.verify(signed, nowMs, audience), (error: unknown) => {
      assert.ok(error instanceof TokenError);
      assert.equal(error.code, "token_malformed");
      return true;
    });
  });
});
