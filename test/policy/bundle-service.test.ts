/**
 * The bundle-service client against a real node:http server on 127.0.0.1:
 * ETag/304, activation deciding when the ETag moves, OPA's delays and
 * backoff, long polling, every failure mode by its code, bearer tokens,
 * stop(). Timers run on a manual scheduler; requests are real.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import type { ServerResponse } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, beforeEach, describe, test } from "node:test";
import { BundleServiceError, StartupError } from "../../src/errors.ts";
import { opaBundleMediaType } from "../../src/policy/bundle-download.ts";
import { BundleServiceClient, bundleAttemptReasons } from "../../src/policy/bundle-service.ts";
import { bundleV1, bundleV2, ClientHarness } from "../support/bundle-service-harness.ts";
import { BundleTestServer } from "../support/bundle-test-server.ts";
import { repoRoot } from "../support/opa.ts";
import { freePort } from "../support/ports.ts";

let server: BundleTestServer;
let scratch: string;

before(async () => {
  server = await BundleTestServer.start();
  scratch = mkdtempSync(join(tmpdir(), "mcp-pdp-bundle-service-"));
});

after(async () => {
  await server.close();
  rmSync(scratch, { recursive: true, force: true });
});

beforeEach(() => {
  server.requests.length = 0;
});

/** Serves `bytes` with `etag`, answering 304 when If-None-Match names it (as nginx does). */
function serveBundle(bytes: Buffer, etag: string, contentType = "application/gzip") {
  return (
    request: { headers: { "if-none-match"?: string | undefined } },
    response: ServerResponse,
  ) => {
    if (request.headers["if-none-match"] === etag) {
      response.writeHead(304, { ETag: etag }).end();
      return;
    }
    response.writeHead(200, {
      "Content-Type": contentType,
      "Content-Length": bytes.length,
      ETag: etag,
    });
    response.end(bytes);
  };
}

describe("polling: ETag, 304 and the delays", () => {
  test("a 200 is activated and its ETag sent next; a 304 keeps the bundle; the delay is in [min, max]", async () => {
    server.handle(serveBundle(bundleV1, '"v1"'));
    const harness = new ClientHarness({ url: server.origin });
    try {
      const first = await harness.first();
      assert.equal(first.reason, "downloaded");
      assert.equal(first.httpStatus, 200);
      assert.equal(first.bytes, bundleV1.length);
      assert.equal(harness.bundles.length, 1);
      assert.deepEqual(harness.bundles[0]?.bytes, bundleV1);
      assert.equal(harness.bundles[0].etag, '"v1"');
      assert.equal(harness.bundles[0].url, `${server.origin}/bundles/authz.tar.gz`);
      assert.equal(server.requests[0]?.url, "/bundles/authz.tar.gz");
      assert.equal(server.requests[0].headers["if-none-match"], undefined);
      assert.equal(server.requests[0].headers.prefer, "modes=snapshot");

      const second = await harness.poll();
      assert.equal(second.delayMs, 90_000, "random 0.5 → the middle of [60 s, 120 s]");
      assert.equal(second.attempt.reason, "not_modified");
      assert.equal(server.requests[1]?.headers["if-none-match"], '"v1"');
      assert.equal(harness.bundles.length, 1, "a 304 activates nothing");

      const status = harness.client.status();
      assert.equal(status.etag, '"v1"');
      assert.equal(status.consecutiveFailures, 0);
      assert.equal(status.lastError, undefined);
      assert.equal(status.lastSuccessfulRequestAt, harness.scheduler.time);
      assert.ok(status.lastSuccessfulDownloadAt !== undefined);
      assert.ok(status.lastSuccessfulDownloadAt < harness.scheduler.time);
      assert.equal(status.lastSuccessfulActivationAt, status.lastSuccessfulDownloadAt);
      assert.equal(status.lastDownloadBytes, bundleV1.length);
    } finally {
      await harness.stop();
    }
  });

  test("a refused bundle keeps the old ETag and is fetched again after the polling delay, not at once", async () => {
    server.handle(serveBundle(bundleV1, '"v1"'));
    let refuse = true;
    const harness = new ClientHarness({
      url: server.origin,
      onBundle: async (bundle) => {
        harness.bundles.push(bundle);
        if (bundle.etag === '"v2"' && refuse) {
          throw new StartupError("bundle_invalid", ["signature does not verify"]);
        }
        await Promise.resolve();
      },
    });
    try {
      assert.equal((await harness.first()).reason, "downloaded");
      server.handle(serveBundle(bundleV2, '"v2"'));
      const refused = await harness.poll();
      assert.equal(refused.attempt.reason, "refused");
      assert.equal(refused.attempt.ok, false);
      const status = harness.client.status();
      assert.equal(status.etag, '"v1"', "the ETag moves only with a successful activation");
      assert.equal(status.lastError?.code, "refused");
      assert.match(status.lastError.message, /signature does not verify/);
      assert.equal(status.lastError.activationCode, "bundle_invalid");
      assert.equal(status.consecutiveFailures, 1);

      refuse = false;
      const again = await harness.poll();
      assert.equal(again.delayMs, 90_000, "the polling delay, not the backoff");
      assert.equal(server.requests[2]?.headers["if-none-match"], '"v1"');
      assert.equal(again.attempt.reason, "downloaded");
      assert.equal(harness.client.status().etag, '"v2"');
      assert.equal(harness.client.status().consecutiveFailures, 0);
    } finally {
      await harness.stop();
    }
  });

  test("failures back off as OPA does (100 ms × 1.6ⁿ⁻¹), capped at the max delay; a success resets it", async () => {
    server.handle((_request, response) => {
      response.writeHead(500).end("down for maintenance");
    });
    const harness = new ClientHarness({ url: server.origin, minDelayMs: 100, maxDelayMs: 1000 });
    try {
      assert.equal((await harness.first()).reason, "http_5xx");
      const delays: number[] = [];
      for (let failure = 2; failure <= 8; failure += 1) {
        const { delayMs, attempt } = await harness.poll();
        assert.equal(attempt.reason, "http_5xx");
        delays.push(Math.round(delayMs));
      }
      assert.deepEqual(delays, [100, 160, 256, 410, 655, 1000, 1000]);
      assert.equal(harness.client.status().consecutiveFailures, 8);
      assert.equal(harness.client.status().lastError?.httpStatus, 500);

      server.handle(serveBundle(bundleV1, '"v1"'));
      assert.equal((await harness.poll()).attempt.reason, "downloaded");
      assert.equal(harness.client.status().consecutiveFailures, 0);
      assert.equal((await harness.poll()).delayMs, 550, "back to the polling delay");
    } finally {
      await harness.stop();
    }
  });

  test("the backoff is jittered by ±20 % and never passes the max delay", async () => {
    server.handle((_request, response) => {
      response.writeHead(503).end();
    });
    let random = 0;
    const harness = new ClientHarness({
      url: server.origin,
      minDelayMs: 0,
      maxDelayMs: 200,
      random: () => random,
    });
    try {
      // Each delay is drawn when the attempt before it ends.
      await harness.first(); // drawn with random 0: -20 %
      random = 0.999_999; // +20 % from now on
      assert.equal(Math.round((await harness.poll()).delayMs), 80);
      assert.equal(Math.round((await harness.poll()).delayMs), 192, "160 × 1.2 < 200");
      assert.equal(Math.round((await harness.poll()).delayMs), 200, "256 × 1.2 capped at 200");
    } finally {
      await harness.stop();
    }
  });
});

describe("long polling", () => {
  test("Prefer: wait=N is sent; the server holds the request and answers as soon as a bundle is published", async () => {
    let current = { bytes: bundleV1, etag: '"v1"' };
    let publish: (() => void) | undefined;
    server.handle((request, response) => {
      const answer = () => {
        response.writeHead(200, {
          "Content-Type": opaBundleMediaType,
          "Content-Length": current.bytes.length,
          ETag: current.etag,
        });
        response.end(current.bytes);
      };
      if (request.headers["if-none-match"] !== current.etag) {
        answer();
        return;
      }
      const wait = /wait=(\d+)/.exec(String(request.headers.prefer ?? ""));
      if (wait === null) {
        response.writeHead(304).end(); // an unchanged bundle is held only when the client asks
        return;
      }
      const held = setTimeout(
        () => {
          response.writeHead(304, { "Content-Type": opaBundleMediaType }).end();
        },
        Number(wait[1]) * 1000,
      );
      publish = () => {
        clearTimeout(held);
        answer();
      };
    });
    const harness = new ClientHarness({ url: server.origin, longPollWaitS: 5 });
    try {
      const first = await harness.first();
      assert.equal(first.reason, "downloaded");
      assert.equal(first.longPoll, true);
      assert.equal(server.requests[0]?.headers.prefer, "modes=snapshot;wait=5");
      assert.equal(harness.client.status().longPolling, true);

      // The next request goes out after the one-second floor between long polls, not after 60–120 s.
      const fired = harness.scheduler.fire();
      assert.equal(await fired, 1000);
      const startedAt = performance.now();
      while (publish === undefined && performance.now() - startedAt < 5000) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      assert.equal(server.requests[1]?.headers["if-none-match"], '"v1"');
      current = { bytes: bundleV2, etag: '"v2"' };
      assert.ok(publish, "the server is holding the request");
      publish();
      const second = await harness.next();
      const tookMs = performance.now() - startedAt;
      assert.equal(second.reason, "downloaded");
      assert.deepEqual(harness.bundles[1]?.bytes, bundleV2);
      assert.ok(
        tookMs < 4000,
        `published bundle arrived in ${Math.round(tookMs)} ms, before the wait ran out`,
      );
      assert.equal(harness.client.status().etag, '"v2"');
    } finally {
      await harness.stop();
    }
  });

  test("a server that does not answer with OPA's media type is polled, not long-polled", async () => {
    server.handle(serveBundle(bundleV1, '"v1"', "application/gzip"));
    const harness = new ClientHarness({ url: server.origin, longPollWaitS: 30 });
    try {
      await harness.first();
      assert.equal(server.requests[0]?.headers.prefer, "modes=snapshot;wait=30");
      assert.equal(harness.client.status().longPolling, false);
      const next = await harness.poll();
      assert.equal(next.delayMs, 90_000);
      assert.equal(next.attempt.longPoll, false);
      assert.equal(server.requests[1]?.headers.prefer, "modes=snapshot");
    } finally {
      await harness.stop();
    }
  });
});

describe("every failure has its code, and the bundle in hand stays", () => {
  const cases: {
    name: string;
    code: string;
    handler: (response: ServerResponse, request: { headers: Record<string, unknown> }) => void;
    httpStatus?: number;
    maxBytes?: number;
  }[] = [
    {
      name: "500",
      code: "http_5xx",
      httpStatus: 500,
      handler: (response) => response.writeHead(500).end("internal"),
    },
    {
      name: "404",
      code: "http_4xx",
      httpStatus: 404,
      handler: (response) => response.writeHead(404).end(),
    },
    {
      name: "a redirect (not followed)",
      code: "http_3xx",
      httpStatus: 302,
      handler: (response) =>
        response.writeHead(302, { Location: "http://127.0.0.1:1/elsewhere.tar.gz" }).end(),
    },
    {
      name: "a 204",
      code: "http_other",
      httpStatus: 204,
      handler: (response) => response.writeHead(204).end(),
    },
    {
      name: "garbage with a bundle content type",
      code: "refused",
      httpStatus: 200,
      handler: (response) =>
        response
          .writeHead(200, { "Content-Type": "application/octet-stream" })
          .end(randomBytes(4096)),
    },
    {
      name: "an HTML page with 200",
      code: "content_type",
      httpStatus: 200,
      handler: (response) =>
        response.writeHead(200, { "Content-Type": "text/html; charset=utf-8" }).end("<html>"),
    },
    {
      name: "an empty 200",
      code: "empty",
      handler: (response) =>
        response.writeHead(200, { "Content-Type": "application/gzip", "Content-Length": 0 }).end(),
    },
    {
      name: "a body cut short (Content-Length)",
      code: "truncated",
      handler: (response) => {
        response.writeHead(200, { "Content-Type": "application/gzip", "Content-Length": 4096 });
        response.write(bundleV1.subarray(0, 100), () => response.socket?.destroy());
      },
    },
    {
      name: "a body cut short (chunked)",
      code: "truncated",
      handler: (response) => {
        response.writeHead(200, { "Content-Type": "application/gzip" });
        response.write(bundleV1.subarray(0, 100), () => response.socket?.destroy());
      },
    },
    {
      name: "a declared size over the limit",
      code: "too_large",
      maxBytes: 1000,
      handler: (response) =>
        response
          .writeHead(200, { "Content-Type": "application/gzip", "Content-Length": 2000 })
          .end(Buffer.alloc(2000)),
    },
    {
      name: "a streamed size over the limit (no Content-Length)",
      code: "too_large",
      maxBytes: 1000,
      handler: (response) => {
        response.writeHead(200, { "Content-Type": "application/gzip" });
        response.write(Buffer.alloc(600));
        setTimeout(() => response.end(Buffer.alloc(600)), 20);
      },
    },
  ];
  for (const { name, code, handler, httpStatus, maxBytes } of cases) {
    test(`${name} → ${code}`, async () => {
      server.handle(serveBundle(bundleV1, '"v1"'));
      const harness = new ClientHarness({
        url: server.origin,
        ...(maxBytes === undefined ? {} : { maxBytes }),
      });
      try {
        if (maxBytes === undefined) assert.equal((await harness.first()).reason, "downloaded");
        else harness.client.start();
        server.handle((request, response) => {
          handler(response, request);
        });
        const { attempt } = await harness.poll();
        assert.equal(attempt.reason, code);
        assert.ok(bundleAttemptReasons.includes(attempt.reason));
        const status = harness.client.status();
        assert.equal(status.lastError?.code, code);
        if (httpStatus !== undefined) assert.equal(status.lastError.httpStatus, httpStatus);
        if (maxBytes === undefined) assert.equal(status.etag, '"v1"', "the bundle in hand stays");
        // One request for the failing poll: nothing retried within it, no redirect followed.
        assert.equal(server.requests.length, maxBytes === undefined ? 2 : 1);
      } finally {
        await harness.stop();
      }
    });
  }

  test("a server that does not answer in time → timeout (the deadline covers the body too)", async () => {
    server.handle((_request, response) => {
      response.writeHead(200, { "Content-Type": "application/gzip" });
      response.write(bundleV1.subarray(0, 10)); // …and nothing more
    });
    const harness = new ClientHarness({ url: server.origin, timeoutMs: 300 });
    try {
      const startedAt = performance.now();
      const attempt = await harness.first();
      assert.equal(attempt.reason, "timeout");
      const tookMs = performance.now() - startedAt;
      assert.ok(tookMs >= 290 && tookMs < 2000, `timed out after ${Math.round(tookMs)} ms`);
    } finally {
      await harness.stop();
    }
  });

  test("a service that is down → network, and the next try backs off", async () => {
    const harness = new ClientHarness({ url: `http://127.0.0.1:${await freePort()}` });
    try {
      const attempt = await harness.first();
      assert.equal(attempt.reason, "network");
      assert.match(harness.client.status().lastError?.message ?? "", /ECONNREFUSED/);
      assert.equal(Math.round((await harness.poll()).delayMs), 100);
    } finally {
      await harness.stop();
    }
  });
});

describe("bearer credentials", () => {
  const token = "s3cret-Token.value";
  const requireToken = (expected: () => string) =>
    ((request, response) => {
      if (request.headers.authorization !== `Bearer ${expected()}`) {
        response.writeHead(401, { "WWW-Authenticate": "Bearer" }).end();
        return;
      }
      serveBundle(bundleV1, '"v1"')(request, response);
    }) satisfies Parameters<BundleTestServer["handle"]>[0];

  test("without the token the service answers 401 → http_4xx", async () => {
    server.handle(requireToken(() => token));
    const harness = new ClientHarness({ url: server.origin });
    try {
      assert.equal((await harness.first()).reason, "http_4xx");
      assert.equal(harness.client.status().lastError?.httpStatus, 401);
      assert.equal(server.requests[0]?.headers.authorization, undefined);
    } finally {
      await harness.stop();
    }
  });

  test("a token file is read on every request (rotation), and the token reaches no status", async () => {
    let expected = token;
    server.handle(requireToken(() => expected));
    const file = join(scratch, "token");
    writeFileSync(file, `${token}\n`);
    const harness = new ClientHarness({ url: server.origin, credentials: { bearer: { file } } });
    try {
      assert.equal((await harness.first()).reason, "downloaded");
      expected = "rotated-token";
      writeFileSync(file, `${expected}\n`);
      assert.equal((await harness.poll()).attempt.reason, "not_modified");
      assert.equal(server.requests[1]?.headers.authorization, "Bearer rotated-token");
      rmSync(file);
      const missing = (await harness.poll()).attempt;
      assert.equal(missing.reason, "credentials");
      const status = JSON.stringify(harness.client.status());
      assert.ok(!status.includes(token) && !status.includes("rotated-token"), status);
      assert.match(status, /unreadable \(ENOENT\)/);
    } finally {
      await harness.stop();
    }
  });

  test("a token from a named environment variable, with OPA's scheme setting", async () => {
    server.handle((request, response) => {
      if (request.headers.authorization !== `Token ${token}`) {
        response.writeHead(401).end();
        return;
      }
      serveBundle(bundleV1, '"v1"')(request, response);
    });
    const harness = new ClientHarness({
      url: server.origin,
      credentials: { bearer: { environmentVariable: "BUNDLE_TOKEN" }, bearerScheme: "Token" },
      environment: { BUNDLE_TOKEN: token },
    });
    try {
      assert.equal((await harness.first()).reason, "downloaded");
    } finally {
      await harness.stop();
    }
    const unset = new ClientHarness({
      url: server.origin,
      credentials: { bearer: { environmentVariable: "BUNDLE_TOKEN" } },
      environment: {},
    });
    try {
      assert.equal((await unset.first()).reason, "credentials");
      assert.equal(server.requests.length, 1, "no request goes out without the token");
    } finally {
      await unset.stop();
    }
  });

  test("extra headers are sent as configured", async () => {
    server.handle(serveBundle(bundleV1, '"v1"'));
    const harness = new ClientHarness({
      url: `${server.origin}/base/`,
      resource: "/a/bundle.tar.gz",
      headers: { "X-Api-Key": "key-1" },
    });
    try {
      await harness.first();
      assert.equal(server.requests[0]?.headers["x-api-key"], "key-1");
      assert.equal(server.requests[0].url, "/base/a/bundle.tar.gz");
    } finally {
      await harness.stop();
    }
  });
});

describe("start, stop and the process", () => {
  test("stop() aborts the request in flight and leaves no timer", async () => {
    const seen = { held: false };
    server.handle(() => {
      seen.held = true; // never answered
    });
    const harness = new ClientHarness({ url: server.origin, longPollWaitS: 60 });
    harness.client.start();
    await harness.scheduler.fire();
    const startedAt = performance.now();
    while (!seen.held && performance.now() - startedAt < 5000) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.ok(seen.held, "the request reached the server");
    await harness.stop();
    assert.ok(performance.now() - startedAt < 2000);
    assert.equal(harness.scheduler.hasPending(), false);
    assert.equal(harness.attempts.length, 0, "a stop is not the service's failure");
    assert.equal(harness.client.status().consecutiveFailures, 0);
  });

  test("start() after a first pollNow() (a start that waits for its bundle) does not poll twice", async () => {
    server.handle(serveBundle(bundleV1, '"v1"'));
    const harness = new ClientHarness({ url: server.origin });
    try {
      assert.equal((await harness.client.pollNow()).reason, "downloaded");
      assert.equal((await harness.next()).reason, "downloaded", "onAttempt told of it too");
      harness.client.start();
      const next = await harness.poll();
      assert.equal(next.delayMs, 90_000);
      assert.equal(next.attempt.reason, "not_modified");
      assert.equal(server.requests.length, 2);
    } finally {
      await harness.stop();
    }
  });

  test("an onAttempt hook that throws does not stop the polling", async () => {
    server.handle(serveBundle(bundleV1, '"v1"'));
    const harness = new ClientHarness({
      url: server.origin,
      onAttempt: () => {
        throw new Error("metrics broke");
      },
    });
    try {
      assert.equal((await harness.first()).reason, "downloaded");
      assert.equal((await harness.poll()).attempt.reason, "not_modified");
    } finally {
      await harness.stop();
    }
  });

  test("pollNow() while a request is in flight is that request, not a second one", async () => {
    let answer: (() => void) | undefined;
    server.handle((request, response) => {
      answer = () => {
        serveBundle(bundleV1, '"v1"')(request, response);
      };
    });
    const harness = new ClientHarness({ url: server.origin });
    try {
      const first = harness.client.pollNow();
      const second = harness.client.pollNow();
      assert.equal(first, second);
      const startedAt = performance.now();
      while (answer === undefined && performance.now() - startedAt < 5000) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      answer?.();
      assert.equal((await first).reason, "downloaded");
      assert.equal(server.requests.length, 1);
    } finally {
      await harness.stop();
    }
  });

  test("a started client keeps no process alive on its own (timers and idle sockets are unref'd)", async () => {
    server.handle(serveBundle(bundleV1, '"v1"'));
    // The script holds the process open (a ref'd timer) until the first poll has ended, as a
    // serving PDP would; from then on only the client's next-poll timer and its idle connection
    // are left, and they must not keep the process alive.
    const script = `
      import { BundleServiceClient } from ${JSON.stringify(join(repoRoot, "src/policy/bundle-service.ts"))};
      const holdOpen = setInterval(() => {}, 60_000);
      const client = new BundleServiceClient({
        url: ${JSON.stringify(server.origin)}, resource: "bundles/authz.tar.gz",
        onBundle: async () => {},
        onAttempt: (attempt) => {
          console.log(attempt.reason);
          clearInterval(holdOpen);
        },
      });
      client.start();
    `;
    const child = spawn(process.execPath, ["--input-type=module", "-e", script], {
      cwd: repoRoot,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
    const exited = await new Promise<number | null>((resolve) => {
      const kill = setTimeout(() => {
        child.kill("SIGKILL");
      }, 15_000);
      child.once("exit", (code) => {
        clearTimeout(kill);
        resolve(code);
      });
    });
    assert.equal(exited, 0, `the process should exit by itself after its poll:\n${output}`);
    assert.equal(output.trim(), "downloaded");
  });
});

test("the README's table names every reason a poll can end with", () => {
  const readme = readFileSync(join(repoRoot, "README.md"), "utf8");
  const section = readme.split("## Policy from a bundle service")[1]?.split("\n## ")[0] ?? "";
  const documented = [...section.matchAll(/^\| `([a-z0-9_]+)` +\|/gm)].map((match) => match[1]);
  assert.deepEqual([...documented].sort(), [...bundleAttemptReasons].sort());
});

describe("options are checked at once, every problem named", () => {
  test("URL, resource, delays, wait and credentials", () => {
    const refusal = (options: Partial<ConstructorParameters<typeof BundleServiceClient>[0]>) => {
      try {
        new BundleServiceClient({
          url: "https://bundles.example",
          resource: "bundles/authz.tar.gz",
          onBundle: async () => {},
          ...options,
        });
      } catch (error) {
        assert.ok(error instanceof StartupError);
        assert.equal(error.code, "config_invalid");
        return error.problems;
      }
      return assert.fail("expected config_invalid");
    };
    assert.equal(
      refusal({
        url: "https://user:pw@bundles.example/x?y=1",
        resource: "../etc/passwd",
        minDelayMs: 10,
        maxDelayMs: 5,
        longPollWaitS: 0.5,
      }).length,
      5,
    );
    assert.equal(refusal({ url: "ftp://bundles.example" }).length, 1);
    assert.equal(refusal({ resource: "a/%2e%2e/%2e%2e/b" }).length, 1);
    assert.equal(refusal({ resource: "/" }).length, 1);
    assert.match(
      refusal({ url: "http://bundles.example", credentials: { bearer: { file: "/t" } } }).join(),
      /https/,
    );
    assert.match(
      refusal({
        credentials: { clientCertFile: join(scratch, "absent.crt"), clientKeyFile: "/k" },
      }).join(),
      /absent\.crt/,
    );
    assert.match(refusal({ headers: { "X-Bad": "a\r\nInjected: 1" } }).join(), /X-Bad/);
    assert.match(refusal({ headers: { "if-none-match": "*" } }).join(), /the client's own/);
    assert.match(
      refusal({
        headers: { authorization: "Basic x" },
        credentials: { bearer: { environmentVariable: "T" } },
      }).join(),
      /the client's own/,
    );
    assert.ok(new BundleServiceError("timeout", "x").code === "timeout");
  });
});
