/**
 * The bundle-service client against an https server that requires a client
 * certificate (the test PKI of test/support/certs.ts): the configured
 * certificate and CA get the bundle; no certificate, a certificate of an
 * untrusted CA, or a server the client's CA did not sign are refused, with
 * TLS verification never switched off.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { BundleServiceCredentials } from "../../src/policy/bundle-download.ts";
import { bundleV1, ClientHarness } from "../support/bundle-service-harness.ts";
import { BundleTestServer } from "../support/bundle-test-server.ts";
import { generateTestPki, type TestPki } from "../support/certs.ts";

let pki: TestPki;
let server: BundleTestServer;

before(async () => {
  pki = generateTestPki();
  server = await BundleTestServer.start({
    cert: pki.server.cert,
    key: pki.server.key,
    ca: pki.ca.cert,
    requestCert: true,
    rejectUnauthorized: true,
  });
  server.handle((_request, response) => {
    response.writeHead(200, { "Content-Type": "application/gzip", ETag: '"v1"' }).end(bundleV1);
  });
});

after(async () => {
  await server.close();
  pki.remove();
});

async function firstAttempt(credentials: BundleServiceCredentials) {
  const harness = new ClientHarness({ url: server.origin, credentials });
  try {
    const attempt = await harness.first();
    return { attempt, status: harness.client.status() };
  } finally {
    await harness.stop();
  }
}

describe("mTLS to the bundle service", () => {
  test("the configured client certificate and CA get the bundle", async () => {
    const { attempt } = await firstAttempt({
      clientCertFile: pki.clients.gateway.certFile,
      clientKeyFile: pki.clients.gateway.keyFile,
      caFile: pki.ca.certFile,
    });
    assert.equal(attempt.reason, "downloaded");
  });

  test("without a client certificate the server refuses the handshake", async () => {
    const { attempt, status } = await firstAttempt({ caFile: pki.ca.certFile });
    assert.equal(attempt.reason, "tls");
    assert.match(status.lastError?.message ?? "", /CERTIFICATE_REQUIRED/);
  });

  test("a client certificate of a CA the server does not trust is refused", async () => {
    const { attempt } = await firstAttempt({
      clientCertFile: pki.clients.untrusted.certFile,
      clientKeyFile: pki.clients.untrusted.keyFile,
      caFile: pki.ca.certFile,
    });
    // TLS 1.3: the server's alert may reach the client as a reset before it can be read.
    assert.ok(attempt.reason === "tls" || attempt.reason === "network", attempt.reason);
  });

  test("a server certificate the configured CA did not sign → tls (verification is never off)", async () => {
    const { attempt, status } = await firstAttempt({
      clientCertFile: pki.clients.gateway.certFile,
      clientKeyFile: pki.clients.gateway.keyFile,
      caFile: pki.untrustedCa.certFile,
    });
    assert.equal(attempt.reason, "tls");
    assert.match(
      status.lastError?.message ?? "",
      /UNABLE_TO_VERIFY_LEAF_SIGNATURE|self-signed|verify/i,
    );
  });

  test("without a CA file the system's CAs are used, and they do not know the test CA → tls", async () => {
    const { attempt } = await firstAttempt({
      clientCertFile: pki.clients.gateway.certFile,
      clientKeyFile: pki.clients.gateway.keyFile,
    });
    assert.equal(attempt.reason, "tls");
  });
});
