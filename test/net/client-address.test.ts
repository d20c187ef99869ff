/**
 * normalizeAddress: one spelling for an IPv4 client, whichever way IPv6
 * writes it; TrustedProxies uses it for the peer and every X-Forwarded-For hop.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { normalizeAddress, TrustedProxies } from "../../src/net/client-address.ts";

describe("normalizeAddress", () => {
  test("every spelling of an IPv4-mapped address is its IPv4 address", () => {
    for (const [mapped, ipv4] of [
      ["::ffff:10.1.2.3", "10.1.2.3"],
      ["::FFFF:10.1.2.3", "10.1.2.3"],
      ["::ffff:a01:203", "10.1.2.3"],
      ["::ffff:0a01:0203", "10.1.2.3"],
      ["::FFFF:A01:203", "10.1.2.3"],
      ["0:0:0:0:0:ffff:a01:203", "10.1.2.3"],
      ["0000:0000:0000:0000:0000:ffff:10.1.2.3", "10.1.2.3"],
      ["::ffff:127.0.0.1", "127.0.0.1"],
      ["::ffff:0.0.0.0", "0.0.0.0"],
      ["::ffff:ffff:ffff", "255.255.255.255"],
    ] as const) {
      assert.equal(normalizeAddress(mapped), ipv4, mapped);
    }
  });

  test("anything else is returned unchanged", () => {
    for (const address of [
      "10.1.2.3",
      "::1",
      "2001:db8::ffff:a01:203",
      "ffff::1",
      "::ffff:0:10.1.2.3",
      "::10.1.2.3",
      "64:ff9b::a01:203",
      "fe80::ffff:a01:203%eth0",
      "::ffff:10.1.2.3%eth0",
      "::ffff:10.1.2",
      "::ffff:10.1.2.300",
      "ffff",
      "",
      "not an address",
    ]) {
      assert.equal(normalizeAddress(address), address, address);
    }
  });
});

describe("TrustedProxies with IPv4-mapped addresses", () => {
  const proxies = new TrustedProxies(["10.0.0.0/8"]);

  test("a mapped peer inside an IPv4 range is trusted, in any spelling", () => {
    for (const peer of ["10.0.0.1", "::ffff:10.0.0.1", "::ffff:a00:1"]) {
      assert.equal(proxies.trusts(peer), true, peer);
    }
    assert.equal(proxies.trusts("::ffff:b00:1"), false);
  });

  test("the client address is normalized, from the peer or from X-Forwarded-For", () => {
    assert.equal(proxies.clientAddress("::ffff:c0a8:101", undefined), "192.168.1.1");
    assert.equal(proxies.clientAddress("::ffff:a00:1", "::ffff:c0a8:101"), "192.168.1.1");
    // A trusted hop written in hex is skipped like its dotted form.
    assert.equal(proxies.clientAddress("10.0.0.1", "192.0.2.7, ::ffff:a00:2"), "192.0.2.7");
  });
});
