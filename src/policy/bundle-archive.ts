import { createGunzip } from "node:zlib";
import { Parser, type ReadEntry } from "tar";
import { BundleRefusal, type BundleRefusalCode } from "../errors.ts";

/**
 * Bounds on what a bundle may hold. A policy bundle is kilobytes to a few
 * megabytes; the defaults leave ample room and stop a hostile or broken
 * download long before it costs real memory.
 */
export interface BundleLimits {
  /** Largest archive (the `.tar.gz` as downloaded or read). Default 64 MiB. */
  maxCompressedBytes: number;
  /** Largest decompressed tar stream, headers included; counted while inflating. Default 64 MiB. */
  maxUncompressedBytes: number;
  /** Largest single file. Default 32 MiB. */
  maxFileBytes: number;
  /** Most entries (files and directories). Default 10 000. */
  maxFiles: number;
}

export const defaultBundleLimits: Readonly<BundleLimits> = Object.freeze({
  maxCompressedBytes: 64 * 1024 * 1024,
  maxUncompressedBytes: 64 * 1024 * 1024,
  maxFileBytes: 32 * 1024 * 1024,
  maxFiles: 10_000,
});

/** The files of a bundle, keyed by their normalized path (`/data.json`, `/policy.wasm`). */
export type BundleFiles = Map<string, Buffer>;

const fileTypes = new Set(["File", "OldFile", "ContiguousFile"]);
const linkTypes = new Set(["SymbolicLink", "Link"]);

/**
 * Reads the files of a gzipped tar archive held in memory, refusing anything
 * that is not a plain tree of regular files within the limits. Decompression
 * is counted as it streams and stops at the limit, so a gzip bomb costs at
 * most `maxUncompressedBytes` of work and memory. `origin` names the source
 * in every problem (`PDP_BUNDLE /path`, a service URL).
 */
export function readBundleArchive(
  archive: Uint8Array,
  limits: BundleLimits,
  origin: string,
): Promise<BundleFiles> {
  const refuse = (code: BundleRefusalCode, problem: string): BundleRefusal =>
    new BundleRefusal(code, [`${origin}: ${problem}`]);

  if (archive.length > limits.maxCompressedBytes) {
    return Promise.reject(
      refuse(
        "bundle_too_large",
        `archive is ${archive.length} bytes, more than the limit of ${limits.maxCompressedBytes}`,
      ),
    );
  }
  if (archive.length < 2 || archive[0] !== 0x1f || archive[1] !== 0x8b) {
    return Promise.reject(refuse("bundle_not_gzip", "not a gzip stream (a bundle is a .tar.gz)"));
  }

  return new Promise<BundleFiles>((resolve, reject) => {
    const files: BundleFiles = new Map();
    const directories = new Set<string>();
    let entries = 0;
    let inflated = 0;
    let settled = false;

    const gunzip = createGunzip();
    // brotli/zstd off: the tar stream is already inflated here, and sniffing
    // for a second layer would inflate it again outside our count.
    const parser = new Parser({ strict: true, brotli: false, zstd: false });

    const fail = (error: BundleRefusal): void => {
      if (settled) return;
      settled = true;
      gunzip.destroy();
      parser.abort(error);
      reject(error);
    };

    const onEntry = (entry: ReadEntry): void => {
      if (settled) {
        entry.resume();
        return;
      }
      entries += 1;
      if (entries > limits.maxFiles) {
        fail(refuse("bundle_too_many_files", `more than ${limits.maxFiles} entries`));
        return;
      }
      const problem = entryProblem(entry);
      if (problem !== undefined) {
        fail(refuse(problem.code, problem.message));
        return;
      }
      const path = normalizeEntryPath(entry.path);
      if (typeof path !== "string") {
        fail(refuse(path.code, `${JSON.stringify(entry.path)}: ${path.message}`));
        return;
      }
      if (path === "/") {
        // `tar -C dir .` writes the root itself as `./`: nothing to keep.
        if (entry.type === "Directory") {
          entry.resume();
          return;
        }
        fail(refuse("bundle_path_invalid", `${JSON.stringify(entry.path)} names no file`));
        return;
      }
      if (files.has(path) || directories.has(path)) {
        fail(refuse("bundle_duplicate_entry", `${path} appears more than once`));
        return;
      }
      if (entry.type === "Directory") {
        directories.add(path);
        entry.resume();
        return;
      }
      if (entry.size > limits.maxFileBytes) {
        fail(
          refuse(
            "bundle_file_too_large",
            `${path} is ${entry.size} bytes, more than the limit of ${limits.maxFileBytes}`,
          ),
        );
        return;
      }
      const chunks: Buffer[] = [];
      entry.on("data", (chunk: Buffer) => chunks.push(chunk));
      entry.on("end", () => {
        if (!settled) files.set(path, Buffer.concat(chunks));
      });
    };
    parser.on("entry", onEntry);

    parser.on("error", (error: Error & { code?: string }) => {
      if (settled) return;
      const truncated = error.code === "TAR_BAD_ARCHIVE" && /truncated/i.test(error.message);
      fail(
        refuse(truncated ? "bundle_truncated" : "bundle_archive_invalid", `tar: ${error.message}`),
      );
    });
    let archiveEnded = false;
    parser.on("eof", () => {
      archiveEnded = true;
    });
    parser.on("end", () => {
      if (settled) return;
      settled = true;
      resolve(files);
    });

    let first = true;
    gunzip.on("data", (chunk: Buffer) => {
      if (settled) return;
      inflated += chunk.length;
      if (inflated > limits.maxUncompressedBytes) {
        fail(
          refuse(
            "bundle_too_large",
            `expands beyond the limit of ${limits.maxUncompressedBytes} bytes`,
          ),
        );
        return;
      }
      if (first) {
        first = false;
        // A tar stream starts with a file name; gzip or zstd magic here means
        // a second compression layer, which is not a bundle.
        if (chunk[0] === 0x1f && chunk[1] === 0x8b) {
          fail(refuse("bundle_archive_invalid", "compressed twice (gzip inside gzip)"));
          return;
        }
      }
      // Past the end-of-archive blocks the parser only piles bytes up
      // (quadratically): count them against the limit, feed it no more.
      if (!archiveEnded) parser.write(chunk);
    });
    gunzip.on("error", (error: Error & { code?: string }) => {
      // zlib says Z_BUF_ERROR when the input ends before the gzip stream does.
      const truncated = error.code === "Z_BUF_ERROR";
      fail(
        refuse(truncated ? "bundle_truncated" : "bundle_archive_invalid", `gzip: ${error.message}`),
      );
    });
    gunzip.on("end", () => {
      if (!settled) parser.end();
    });
    gunzip.end(archive);
  });
}

/** Why an entry of this type may not be in a bundle, if it may not. */
function entryProblem(entry: ReadEntry): { code: BundleRefusalCode; message: string } | undefined {
  if (fileTypes.has(entry.type) || entry.type === "Directory") return undefined;
  if (linkTypes.has(entry.type)) {
    return {
      code: "bundle_link_entry",
      message: `${JSON.stringify(entry.path)} is a ${entry.type} (to ${JSON.stringify(entry.linkpath ?? "")}); a bundle holds regular files only`,
    };
  }
  return {
    code: "bundle_special_entry",
    message: `${JSON.stringify(entry.path)} is a ${entry.type} entry; a bundle holds regular files only`,
  };
}

/**
 * The path a bundle entry stands for, rooted at the bundle (`/a/b.rego`;
 * `/` for the root itself), or why it has none. One leading `/` is the bundle root, not the file system's:
 * `opa build` writes `/data.json`. Anything else that could point outside
 * the bundle or mean different files on different systems is refused.
 */
function normalizeEntryPath(raw: string): string | { code: BundleRefusalCode; message: string } {
  if (raw.includes("\0")) return { code: "bundle_path_invalid", message: "contains a NUL byte" };
  if (raw.includes("\\")) {
    return { code: "bundle_path_invalid", message: "contains a backslash" };
  }
  if (raw.startsWith("//") || /^[A-Za-z]:/.test(raw)) {
    return { code: "bundle_absolute_path", message: "is an absolute path" };
  }
  const segments = raw.split("/").filter((s) => s !== "" && s !== ".");
  if (segments.includes("..")) {
    return { code: "bundle_path_traversal", message: "has a '..' segment" };
  }
  return `/${segments.join("/")}`;
}
