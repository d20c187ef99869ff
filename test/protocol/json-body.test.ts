import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  parseJsonDocument,
  parseJsonObject,
  requireJsonContentType,
} from "../../src/protocol/json-body.ts";
import { ApiError, type ApiErrorCode } from "../../src/errors.ts";

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

describe("lone UTF-16 surrogates", () => {
  // JSON text as sent: "\\ud800" below is the six characters \ud800 of a JSON escape.
  for (const [name, text, field] of [
    ["a lone high surrogate", '{"a":"x\\ud800y"}', "/a"],
    ["a lone low surrogate", '{"a":"\\udc00"}', "/a"],
    ["a reversed pair", '{"a":"\\udc00\\ud800"}', "/a"],
    ["a high surrogate followed by a non-surrogate escape", '{"a":"\\ud800\\u0041"}', "/a"],
    ["two high surrogates then a low one", '{"a":"\\ud800\\ud800\\udc00"}', "/a"],
    ["a high surrogate at the end of a string", '{"a":"abc\\udbff"}', "/a"],
    ["upper-case hex", '{"a":"\\uD800"}', "/a"],
    ["a string deep in arrays", '{"a":[0,{"b":["ok","\\ud800"]}]}', "/a/1/b/1"],
    ["a key", '{"subject":{"\\ud800":1}}', "/subject/\ufffd"],
    ["a key with / and ~", '{"x/y~":{"k\\udfff":1}}', "/x~1y~0/k\ufffd"],
    ["the subject id", '{"subject":{"type":"user","id":"\\ud800"}}', "/subject/id"],
  ] as const) {
    test(`${name} is invalid_unicode at ${field}`, () => {
      assertRefused(() => parse(text), "invalid_unicode", field);
    });
  }

  test("a top-level string with a lone surrogate is invalid_unicode at the root", () => {
    assertRefused(() => parseJsonDocument(Buffer.from('"\\ud800"'), limits), "invalid_unicode", "");
  });

  test("paired surrogates, raw astral characters and escaped backslashes are accepted", () => {
    assert.deepEqual(parse('{"a":"\\ud83d\\ude00","b":"\\uD83D\\uDE00"}'), { a: "😀", b: "😀" });
    assert.deepEqual(parse(JSON.stringify({ "😀": "𝄞 \u{10ffff}" })), { "😀": "𝄞 \u{10ffff}" });
    // An escaped backslash followed by "ud800" is text, not an escape.
    assert.deepEqual(parse('{"a":"\\\\ud800"}'), { a: "\\ud800" });
  });

  test("invalid_unicode is HTTP 400", () => {
    assert.throws(
      () => parse('{"a":"\\ud800"}'),
      (error: unknown) => error instanceof ApiError && error.status === 400,
    );
  });

  describe('with loneSurrogates: "replace" (how OPA reads them)', () => {
    const replace = (text: string): unknown =>
      parseJsonDocument(Buffer.from(text), limits, { loneSurrogates: "replace" });

    test("each lone surrogate becomes one U+FFFD; pairs are kept", () => {
      assert.deepEqual(replace('{"a":"x\\ud800y","b":"\\udc00\\ud800\\ud800\\udc00"}'), {
        a: "x\ufffdy",
        b: "\ufffd\ufffd\u{10000}",
      });
      assert.deepEqual(replace('["\\ud800", {"k": ["\\udfff"]}]'), ["\ufffd", { k: ["\ufffd"] }]);
      assert.equal(replace('"\\ud800"'), "\ufffd");
    });

    test("keys are replaced too; two keys that become equal keep the later value, as Go does", () => {
      assert.deepEqual(replace('{"\\ud800":1}'), { "\ufffd": 1 });
      assert.deepEqual(replace('{"\\ud800":1,"\\udbff":2}'), { "\ufffd": 2 });
      assert.deepEqual(replace('{"\\udbff":2,"\\ufffd":0}'), { "\ufffd": 0 });
    });

    test("the other refusals still apply", () => {
      assertRefused(() => replace('{"\\ud800":{"__proto__":1}}'), "forbidden_key");
      assertRefused(() => replace('{"\\ud800":1e400}'), "number_unrepresentable", "/\ufffd");
    });
  });
});

describe("numbers a double cannot hold exactly", () => {
  // Each literal's exact decimal differs from the double JSON.parse makes of it.
  for (const literal of [
    "900.00000000000000001",
    "899.99999999999999999",
    "12345678901234567890",
    "9007199254740993",
    "0.30000000000000001",
    "1e400",
    "-1e400",
    "1.7976931348623159e308",
    "1e-400",
    "4e-330",
    "3e-324",
    "-2e-324",
    "9.00000000000000000001e2",
    `1${"0".repeat(400)}`,
  ]) {
    test(`${literal.length > 30 ? `${literal.slice(0, 12)}… (${literal.length} digits)` : literal} is number_unrepresentable with its pointer`, () => {
      assertRefused(
        () => parse(`{"subject":{"properties":{"auth_age_s":${literal}}}}`),
        "number_unrepresentable",
        "/subject/properties/auth_age_s",
      );
    });
  }

  // Each literal is the shortest round-trip decimal of its double, once normalized.
  for (const literal of [
    "0",
    "-0",
    "0.0",
    "0e999",
    "0.1",
    "1e3",
    "9.0e2",
    "900.0",
    "900.000",
    "9E+2",
    "90000e-2",
    "1.5e-7",
    "5e-324",
    "-5e-324",
    "2.2250738585072014e-308",
    "1.7976931348623157e308",
    "-1.7976931348623157e308",
    "0.30000000000000004",
    "9007199254740992",
    "1234567890123456",
    "100000000000000000000",
    "123456789012345.6",
    "0.000000000000000000000000000001",
  ]) {
    test(`${literal} is accepted as the number it spells`, () => {
      assert.deepEqual(parse(`{"n":${literal}}`), { n: Number(literal) });
    });
  }

  test("the pointer follows arrays, nested objects and escaped keys", () => {
    for (const [text, field] of [
      ["[1, 2, 1e400]", "/2"],
      ['{"a":[{"b":1},{"c":[0,0,{"d":1e400}]}]}', "/a/1/c/2/d"],
      ['{"a\\"b":{"x/y~z":[1e400]}}', '/a"b/x~1y~0z/0'],
      ['{"\\u0061":{"":1e400}}', "/a/"],
      ['{"a":1,"b":{"c":2},"d":[3,4],"e":1e400}', "/e"],
      ["1e400", ""],
      ['  {  "a" :  [ 1 , 1e400 ] } ', "/a/1"],
    ] as const) {
      assertRefused(
        () => parseJsonDocument(Buffer.from(text), limits),
        "number_unrepresentable",
        field,
      );
    }
  });

  test("digits inside strings and keys are not numbers", () => {
    assert.deepEqual(parse('{"1e400":"900.00000000000000001","s":"\\" 1e400"}'), {
      "1e400": "900.00000000000000001",
      s: '" 1e400',
    });
  });

  test("the first unfaithful number is named, whatever follows it", () => {
    assertRefused(
      () => parse('{"ok":[0.1,2,3],"bad":12345678901234567890,"worse":1e400}'),
      "number_unrepresentable",
      "/bad",
    );
  });

  test("number_unrepresentable is HTTP 400", () => {
    assert.throws(
      () => parse('{"n":1e400}'),
      (error: unknown) => error instanceof ApiError && error.status === 400,
    );
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
