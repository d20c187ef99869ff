import { endOfString } from "./json-numbers.ts";

/**
 * The first key that occurs twice in one object of a valid JSON text, and
 * where its second occurrence starts, or undefined. JSON.parse keeps the last
 * value of a duplicated key; RFC 8259 leaves the meaning open, and a parser
 * that keeps the first (or refuses) would read `{"name": "delete_repo",
 * "name": "read_file"}` as another tool than the PDP judged. One pass over the
 * text, one set of keys per open object.
 */
export function findDuplicateKey(text: string): { key: string; offset: number } | undefined {
  // One entry per open container: the keys of an object so far, or null for an array.
  const open: (Set<string> | null)[] = [];
  let expectingKey = false;
  for (let index = 0; index < text.length; index++) {
    const char = text.charCodeAt(index);
    if (char === quote) {
      const end = endOfString(text, index);
      const keys = open.at(-1);
      if (expectingKey && keys !== undefined && keys !== null) {
        const raw = text.slice(index + 1, end - 1);
        // Escapes spell one key several ways ("a" and "\u0061"): compare decoded keys.
        const key = raw.includes("\\") ? (JSON.parse(text.slice(index, end)) as string) : raw;
        if (keys.has(key)) return { key, offset: index };
        keys.add(key);
        expectingKey = false;
      }
      index = end - 1;
    } else if (char === openBrace) {
      open.push(new Set());
      expectingKey = true;
    } else if (char === openBracket) {
      open.push(null);
      expectingKey = false;
    } else if (char === closeBrace || char === closeBracket) {
      open.pop();
      expectingKey = false;
    } else if (char === comma) {
      expectingKey = open.at(-1) !== null && open.length > 0;
    }
  }
  return undefined;
}

const quote = 0x22;
const openBrace = 0x7b;
const closeBrace = 0x7d;
const openBracket = 0x5b;
const closeBracket = 0x5d;
const comma = 0x2c;
