/**
 * findInexactNumber against a plain reference: exact decimal arithmetic on
 * the literal's digits (BigInt exponents, no shortcuts) compared with the
 * shortest round-trip decimal of its double. The shortcuts in the scanner
 * (counting digits, the String(value) comparison) must never change the
 * verdict. Literals come from a seeded generator, so a failure reproduces.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { findInexactNumber, jsonPointerAt } from "../../src/protocol/json-numbers.ts";

/** Exact: is the literal's decimal value the shortest round-trip decimal of Number(literal)? */
function referenceFaithful(literal: string): boolean {
  const match = /^-?(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/.exec(literal);
  assert.ok(match, literal);
  const [, integer = "", fraction = "", exponent = "0"] = match;
  const all = `${integer}${fraction}`.replace(/^0+/, "");
  if (all === "") return true; // zero
  const significant = all.replace(/0+$/, "");
  // value = significant × 10^scale
  const scale =
    BigInt(exponent) - BigInt(fraction.length) + BigInt(all.length - significant.length);
  const value = Number(literal);
  if (!Number.isFinite(value) || value === 0) return false;
  const [mantissa = "", power = ""] = Math.abs(value).toExponential().split("e");
  const shortest = mantissa.replace(".", "");
  return shortest === significant && BigInt(power) - BigInt(shortest.length - 1) === scale;
}

/** xorshift32: deterministic, good enough to spread literals. */
function generator(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state / 2 ** 32;
  };
}

function digits(random: () => number, count: number): string {
  let text = "";
  for (let i = 0; i < count; i++) text += String(Math.floor(random() * 10));
  return text;
}

/** A valid JSON number literal: any digit counts, zeros where they are tricky, any exponent. */
function randomLiteral(random: () => number): string {
  const sign = random() < 0.3 ? "-" : "";
  const integerDigits = Math.floor(random() * 24);
  let integer =
    integerDigits === 0
      ? "0"
      : `${1 + Math.floor(random() * 9)}${digits(random, integerDigits - 1)}`;
  if (random() < 0.1) integer = "0";
  let fraction = "";
  if (random() < 0.6) {
    fraction = digits(random, 1 + Math.floor(random() * 24));
    if (random() < 0.3) fraction = `${"0".repeat(Math.floor(random() * 20))}${fraction}`;
    if (random() < 0.3) fraction = `${fraction}${"0".repeat(Math.floor(random() * 5))}`;
  }
  let exponent = "";
  if (random() < 0.6) {
    const magnitudes = [3, 20, 310, 330, 400, 1e6];
    const magnitude = magnitudes[Math.floor(random() * magnitudes.length)] ?? 3;
    const marker = random() < 0.5 ? "e" : "E";
    const expSign = ["", "+", "-"][Math.floor(random() * 3)] ?? "";
    exponent = `${marker}${expSign}${Math.floor(random() * magnitude)}`;
  }
  return `${sign}${integer}${fraction === "" ? "" : `.${fraction}`}${exponent}`;
}

/** A double from random bits (subnormals included), NaN and infinities excluded. */
function randomDouble(random: () => number): number {
  const view = new DataView(new ArrayBuffer(8));
  for (;;) {
    view.setUint32(0, Math.floor(random() * 2 ** 32));
    view.setUint32(4, Math.floor(random() * 2 ** 32));
    const value = view.getFloat64(0);
    if (Number.isFinite(value)) return value;
  }
}

describe("findInexactNumber", () => {
  test("agrees with the exact reference on 30 000 generated literals", () => {
    const random = generator(0x5eed);
    let faithful = 0;
    for (let i = 0; i < 30_000; i++) {
      const literal = randomLiteral(random);
      const expected = referenceFaithful(literal);
      if (expected) faithful++;
      const found = findInexactNumber(`{"a":[${literal}]}`);
      assert.equal(found === undefined, expected, `${literal}: faithful ${String(expected)}`);
      if (found !== undefined) assert.deepEqual(found, { offset: 6, literal });
    }
    // Both verdicts are well represented, so the comparison means something.
    assert.ok(faithful > 3000 && faithful < 27_000, `faithful: ${faithful}`);
  });

  test("every double's own spellings are faithful: JSON.stringify and toExponential", () => {
    const random = generator(0xd0b1e);
    for (let i = 0; i < 20_000; i++) {
      const value = randomDouble(random);
      const spellings = [JSON.stringify(value), value.toExponential()];
      for (const literal of spellings) {
        assert.equal(findInexactNumber(literal), undefined, literal);
        assert.equal(referenceFaithful(literal), true, literal);
      }
    }
  });

  test("18 significant digits are always refused (a shortest round-trip decimal has at most 17), for 5 000 doubles", () => {
    const random = generator(0xbadd);
    for (let i = 0; i < 5000; i++) {
      const value = randomDouble(random);
      if (value === 0) continue;
      const [mantissa = "", power = ""] = value.toExponential().split("e");
      const held = mantissa.replace(/[-.]/g, "").length;
      // The double's own digits, then zeros and a 1 in the 18th significant place: a value
      // within a hair of the double (often the same double), never its shortest decimal.
      const literal = `${mantissa.includes(".") ? mantissa : `${mantissa}.`}${"0".repeat(17 - held)}1e${power}`;
      assert.notEqual(findInexactNumber(literal), undefined, literal);
      assert.equal(referenceFaithful(literal), false, literal);
    }
  });

  test("numbers only: strings, keys, true/false/null are skipped", () => {
    assert.equal(
      findInexactNumber('{"1e400":["12345678901234567890", true, false, null, "\\"1e400"]}'),
      undefined,
    );
  });
});

describe("jsonPointerAt", () => {
  test("names the value starting at an offset", () => {
    const text = '{"a":[10,{"b/c":{"~":20}}],"":{"x":30},"q\\"":[[40]]}';
    for (const [value, pointer] of [
      ["10", "/a/0"],
      ["20", "/a/1/b~1c/~0"],
      ["30", "//x"],
      ["40", '/q"/0/0'],
    ] as const) {
      assert.equal(jsonPointerAt(text, text.indexOf(value)), pointer, value);
    }
    assert.equal(jsonPointerAt("7", 0), "");
  });
});
