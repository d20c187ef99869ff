import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { parseJsonObject, requireJsonContentType } from "../../src/api/json-body.js";
import { ApiError, type ApiErrorCode } from "../../src/errors.js";

const limits = { maxBytes: 4096, maxDepth: 8 };

/** Asserts that `run` throws an ApiError with this code (and this field, when given). */
function assertRefused(run: () => unknown, code: ApiErrorCode, field?: string): void {
  assert.throws(run, (error: unknown) => {
    assert.ok(error instanceof ApiError, `expected an ApiError, got ${String(error)}`);
    assert.equal(error.code, code);
    if (field !== undefined) assert.equal(error.field, field);
    return true;
  });
}

function parse(text: string, custom = limits): Record<string, unknown> {
  return parseJsonObject(Buffer.from(text, "utf8"), custom);
}

/** `{"a":{"a":...1...}}` with `levels` objects. */
function nested(levels: number): string {
  return `${'{"a":'.repeat(levels - 1)}{"a":1}${"}".repeat(levels - 1)}`;
}

describe("parseJsonObject", () => {
  test("returns the parsed object of a valid body", () => {
    const body = { subject: { type: "user", id: "alice" }, list: [1, "two", null, { x: true }] };
    assert.deepEqual(parse(JSON.stringify(body)), body);
  });

  test("accepts keys that merely contain a forbidden word, and forbidden words as values", () => {
    const body = { my__proto__: 1, constructors: 2, prototype_id: 3, value: "__proto__" };
    assert.deepEqual(parse(JSON.stringify(body)), body);
  });

  test("an empty buffer is empty_body", () => {
    assertRefused(() => parseJsonObject(Buffer.alloc(0), limits), "empty_body");
  });

  test("a whitespace-only body is empty_body", () => {
    assertRefused(() => parse(" \n\t\r "), "empty_body");
  });

  for (const [name, bytes] of [
    ["a 0xff byte", [0x7b, 0xff, 0x7d]],
    ["a lone continuation byte", [0x7b, 0x22, 0x80, 0x22, 0x3a, 0x31, 0x7d]],
    ["an overlong encoding of '/'", [0x7b, 0x22, 0xc0, 0xaf, 0x22, 0x3a, 0x31, 0x7d]],
    ["an encoded UTF-16 surrogate", [0x7b, 0x22, 0xed, 0xa0, 0x80, 0x22, 0x3a, 0x31, 0x7d]],
    ["a truncated multi-byte sequence", [0x7b, 0x22, 0xe2, 0x82, 0x22, 0x3a, 0x31, 0x7d]],
  ] as const) {
    test(`${name} is invalid_utf8`, () => {
      assertRefused(() => parseJsonObject(Buffer.from(bytes), limits), "invalid_utf8");
    });
  }

  for (const [name, text] of [
    ["garbage", "not json"],
    ["a trailing comma", '{"a":1,}'],
    ["single quotes", "{'a':1}"],
    ["an unquoted key", "{a:1}"],
    ["two documents", '{"a":1}{"b":2}'],
    ["a truncated object", '{"subject":{"type":"user","id":"al'],
    ["a truncated object missing its closing brace", '{"a":{"b":1}'],
    ["a lone opening brace", "{"],
    ["NaN", '{"a":NaN}'],
    ["a comment", '{"a":1 /* x */}'],
  ] as const) {
    test(`${name} is invalid_json`, () => {
      assertRefused(() => parse(text), "invalid_json");
    });
  }

  test("a body one byte over maxBytes is body_too_large; exactly maxBytes is accepted", () => {
    const atLimit = JSON.stringify({ s: "x".repeat(100 - 8) });
    assert.equal(Buffer.byteLength(atLimit), 100);
    const custom = { maxBytes: 100, maxDepth: 8 };
    assert.deepEqual(parse(atLimit, custom), { s: "x".repeat(92) });
    assertRefused(() => parse(JSON.stringify({ s: "x".repeat(93) }), custom), "body_too_large");
  });

  test("the byte limit counts bytes, not characters", () => {
    // 40 × "é" is 40 characters but 80 bytes.
    const text = JSON.stringify({ s: "é".repeat(40) });
    assert.ok(text.length < 60 && Buffer.byteLength(text) > 60);
    assertRefused(() => parse(text, { maxBytes: 60, maxDepth: 8 }), "body_too_large");
  });

  test("size is checked before anything else (an oversized invalid body is body_too_large)", () => {
    assertRefused(
      () => parseJsonObject(Buffer.alloc(200, 0xff), { maxBytes: 100, maxDepth: 8 }),
      "body_too_large",
    );
  });

  test("exactly maxDepth levels is accepted, one more is body_too_deep with the pointer", () => {
    assert.ok(parse(nested(8)));
    assertRefused(() => parse(nested(9)), "body_too_deep", "/a/a/a/a/a/a/a/a");
  });

  test("arrays count as levels and their indexes appear in the pointer", () => {
    const custom = { maxBytes: 4096, maxDepth: 3 };
    assert.ok(parse('{"a":[[1]]}', custom));
    assertRefused(() => parse('{"a":[1,[2,[3]]]}', custom), "body_too_deep", "/a/1/1");
  });

  test("an empty object or array still counts as a level", () => {
    assertRefused(
      () => parse('{"a":{"b":{}}}', { maxBytes: 4096, maxDepth: 2 }),
      "body_too_deep",
      "/a/b",
    );
    assertRefused(
      () => parse('{"a":{"b":[]}}', { maxBytes: 4096, maxDepth: 2 }),
      "body_too_deep",
      "/a/b",
    );
  });

  test("10 000 levels of nesting is body_too_deep without overflowing the stack", () => {
    const text = `{"context":${"[".repeat(10000)}${"]".repeat(10000)}}`;
    assertRefused(() => parse(text, { maxBytes: 1024 * 1024, maxDepth: 32 }), "body_too_deep");
  });

  test("the body_too_deep pointer escapes ~ and / (RFC 6901)", () => {
    assertRefused(
      () => parse('{"a/b":{"c~d":{"e":{}}}}', { maxBytes: 4096, maxDepth: 3 }),
      "body_too_deep",
      "/a~1b/c~0d/e",
    );
  });

  for (const key of ["__proto__", "constructor", "prototype"]) {
    test(`a top-level "${key}" key is forbidden_key at /${key}`, () => {
      assertRefused(
        () => parse(`{"subject":{},"${key}":{"polluted":true}}`),
        "forbidden_key",
        `/${key}`,
      );
    });

    test(`a nested "${key}" key is forbidden_key with its pointer`, () => {
      const text = `{"subject":{"type":"user","id":"a","properties":{"${key}":{"isAdmin":true}}}}`;
      assertRefused(() => parse(text), "forbidden_key", `/subject/properties/${key}`);
    });

    test(`a "${key}" key inside an array element is forbidden_key with the index in the pointer`, () => {
      assertRefused(() => parse(`{"items":[{},{"${key}":1}]}`), "forbidden_key", `/items/1/${key}`);
    });
  }

  test("a forbidden key spelled with JSON escapes is still refused", () => {
    assertRefused(
      () => parse('{"context":{"\\u005f\\u005fproto\\u005f\\u005f":{"x":1}}}'),
      "forbidden_key",
      "/context/__proto__",
    );
  });

  test("a forbidden key under a key containing / and ~ has an escaped pointer", () => {
    assertRefused(
      () => parse('{"x/y~z":{"constructor":1}}'),
      "forbidden_key",
      "/x~1y~0z/constructor",
    );
  });

  test("a forbidden key does not pollute Object.prototype", () => {
    assert.throws(() => parse('{"__proto__":{"pdpPolluted":true}}'));
    assert.equal((Object.prototype as Record<string, unknown>).pdpPolluted, undefined);
    assert.equal(({} as Record<string, unknown>).pdpPolluted, undefined);
  });

  for (const [name, text] of [
    ["an array", "[]"],
    ["an array of objects", '[{"subject":{}}]'],
    ["a number", "42"],
    ["a string", '"{}"'],
    ["true", "true"],
    ["null", "null"],
  ] as const) {
    test(`a top-level ${name} is invalid_request with the root pointer`, () => {
      assertRefused(() => parse(text), "invalid_request", "");
    });
  }

  test("every refusal maps to a 4xx status", () => {
    const refusals: [() => unknown, number][] = [
      [() => parse(""), 400],
      [() => parseJsonObject(Buffer.from([0xff]), limits), 400],
      [() => parse("{"), 400],
      [() => parse("x".repeat(5000)), 413],
      [() => parse(nested(9)), 400],
      [() => parse('{"__proto__":1}'), 400],
      [() => parse("[]"), 400],
    ];
    for (const [run, status] of refusals) {
      assert.throws(run, (error: unknown) => error instanceof ApiError && error.status === status);
    }
  });
});

describe("requireJsonContentType", () => {
  for (const contentType of [
    "application/json",
    "application/json; charset=utf-8",
    "application/json;charset=UTF-8",
    'application/json; charset="utf-8"',
    "application/json; charset=utf8",
    "Application/JSON",
    "application/foo+json",
    "application/vnd.api+json; charset=utf-8",
    "application/json; boundary=ignored",
  ]) {
    test(`accepts ${contentType}`, () => {
      assert.doesNotThrow(() => {
        requireJsonContentType(contentType);
      });
    });
  }

  for (const contentType of [
    undefined,
    "",
    "text/plain",
    "text/plain; charset=utf-8",
    "text/json",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/jsonx",
    "application/json-patch",
    "application/+json",
    "application/json; charset=latin1",
    "application/json; charset=iso-8859-1",
    "application/json; charset=utf-16",
    "application/json; charset=",
    "application/foo+json; charset=latin1",
  ]) {
    test(`refuses ${contentType === undefined ? "a missing Content-Type" : JSON.stringify(contentType)} as unsupported_media_type`, () => {
      assertRefused(() => {
        requireJsonContentType(contentType);
      }, "unsupported_media_type");
    });
  }

  test("unsupported_media_type is HTTP 415", () => {
    assert.throws(
      () => {
        requireJsonContentType("text/plain");
      },
      (error: unknown) => error instanceof ApiError && error.status === 415,
    );
  });
});
