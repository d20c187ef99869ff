/**
 * parseBearer: the strict reading of an `Authorization: Bearer` header value.
 * Case-insensitive scheme, one or more spaces (RFC 6750: `"Bearer" 1*SP b64token`),
 * one b64token; other whitespace and case tricks are refused with a precise
 * code, never guessed at.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { parseBearer } from "../../src/protocol/bearer.ts";
import { TokenError, type TokenErrorCode } from "../../src/errors.ts";

const jwt =
  "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLWJ5dGVzLWhlcmU_-";

/** Asserts parseBearer refuses `header` with exactly `code`. */
function refuses(header: string | undefined, code: TokenErrorCode): void {
  assert.throws(
    () => parseBearer(header),
    (error: unknown) => {
      assert.ok(error instanceof TokenError, `a TokenError, got ${String(error)}`);
      assert.equal(error.code, code, `${JSON.stringify(header)} is ${code}`);
      return true;
    },
  );
}

describe("parseBearer accepts", () => {
  for (const scheme of ["Bearer", "bearer", "BEARER", "bEaReR"]) {
    test(`the scheme written ${scheme}`, () => {
      assert.equal(parseBearer(`${scheme} ${jwt}`), jwt);
    });
  }

  test("every b64token character, with trailing = padding", () => {
    const credential = "AZaz09-._~+/abc==";
    assert.equal(parseBearer(`Bearer ${credential}`), credential);
  });

  test("a one-character credential", () => {
    assert.equal(parseBearer("Bearer x"), "x");
  });

  // RFC 6750 §2.1: credentials = "Bearer" 1*SP b64token.
  for (const spaces of [2, 3, 17]) {
    test(`${spaces} spaces between the scheme and the token`, () => {
      assert.equal(parseBearer(`Bearer${" ".repeat(spaces)}${jwt}`), jwt);
      assert.equal(parseBearer(`bearer${" ".repeat(spaces)}x`), "x");
    });
  }
});

describe("parseBearer refuses with token_missing", () => {
  test("no header", () => {
    refuses(undefined, "token_missing");
  });

  test("an empty header", () => {
    refuses("", "token_missing");
  });

  test("the Bearer scheme with an empty credential (trailing spaces)", () => {
    refuses("Bearer ", "token_missing");
    refuses("Bearer    ", "token_missing");
  });

  test('"Bearer" alone: no credential at all (the scheme is not a token)', () => {
    refuses("Bearer", "token_missing");
    refuses("bearer", "token_missing");
  });

  for (const header of [
    "Basic dXNlcjpwYXNzd29yZA==",
    "Digest username=alice",
    "DPoP eyJhbGciOiJFUzI1NiJ9.e30.sig",
    "Token abc",
    "Basic",
  ]) {
    test(`another scheme: ${header}`, () => {
      refuses(header, "token_missing");
    });
  }

  test("a scheme the message cannot name (non-ASCII) is still token_missing", () => {
    refuses("Bëarer abc", "token_missing");
  });
});

describe("parseBearer refuses with token_malformed", () => {
  const cases: [string, string][] = [
    ["a tab as separator", `Bearer\t${jwt}`],
    ["spaces, then a tab", `Bearer  \t${jwt}`],
    ["a tab, then spaces", `Bearer\t  ${jwt}`],
    ["two spaces, then trailing text", `Bearer  ${jwt} x`],
    ["two spaces, then two tokens", `Bearer  ${jwt}  ${jwt}`],
    ["a trailing space", `Bearer ${jwt} `],
    ["a trailing tab", `Bearer ${jwt}\t`],
    ["a leading space", ` Bearer ${jwt}`],
    ["leading spaces before a two-space separator", `  Bearer  ${jwt}`],
    ["a leading tab", `\tBearer ${jwt}`],
    ["no separator (Bearerabc)", "Bearerabc"],
    ["no separator before a JWT", `Bearer${jwt}`],
    ["a non-breaking space as separator", `Bearer\u00a0${jwt}`],
    ["a comma after the scheme", `Bearer, ${jwt}`],
    ["two tokens", `Bearer ${jwt} ${jwt}`],
    ["two Bearer credentials", `Bearer ${jwt}, Bearer ${jwt}`],
    ["CRLF header injection", `Bearer ${jwt}\r\nX-Admin: true`],
    ["a bare LF", `Bearer ${jwt}\n`],
    ["a bare CR", `Bearer ${jwt}\r`],
    ["a NUL byte", `Bearer ${jwt}\u0000`],
    ["a quoted credential", `Bearer "${jwt}"`],
    ["percent-encoding", "Bearer abc%2Edef"],
    ["a comma inside", "Bearer abc,def"],
    ["a semicolon", "Bearer abc;def"],
    ["padding in the middle", "Bearer abc=def"],
    ["padding only", "Bearer ==="],
    ["an auth-param instead of a token", 'Bearer realm="x"'],
    ["non-ASCII letters", "Bearer tökén"],
    ["a zero-width space", `Bearer ${jwt}\u200b`],
  ];
  for (const [name, header] of cases) {
    test(name, () => {
      refuses(header, "token_malformed");
    });
  }
});

describe("parseBearer errors never echo the credential", () => {
  test("the message of a refused credential does not contain it", () => {
    const secret = "s3cr3t-t0ken-value";
    for (const header of [`Bearer\t${secret}`, `Bearer ${secret} x`, `Bearer${secret}`]) {
      assert.throws(
        () => parseBearer(header),
        (error: unknown) => {
          assert.ok(error instanceof TokenError);
          assert.ok(!error.message.includes(secret), error.message);
          return true;
        },
      );
    }
  });

  test("a scheme that is really a credential is not named in the message", () => {
    const secret = "c2VjcmV0LXRva2VuLXdpdGgtbm8tc2NoZW1l";
    assert.throws(
      () => parseBearer(secret),
      (error: unknown) => {
        assert.ok(error instanceof TokenError);
        assert.equal(error.code, "token_missing");
        // describeScheme names short alphanumeric schemes only; a 36-character base64 is not one.
        assert.ok(!error.message.includes(secret), error.message);
        return true;
      },
    );
  });
});
