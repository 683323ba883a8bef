/**
 * The agent's self-signed serving certificate, checked by real parsers: node's
 * X509Certificate, the openssl CLI, and a TLS handshake with node:https whose
 * client pins the fingerprint or trusts the certificate as its CA.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request, type RequestOptions } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { describe, test } from 'node:test';
import { selfSignedCertificate, type ServingCertificate } from '../../src/lib/self-signed-cert.js';

const NOW = new Date('2026-12-01T06:50:30.250Z');
const cert = selfSignedCertificate({
  commonName: 'xdplb-agent',
  ipAddresses: ['127.0.0.1', '198.19.0.10', '2001:db8::1', '::1'],
  dnsNames: ['xdplb-agent.xdplb-system.svc', 'localhost'],
  now: NOW,
});
const openssl = (args: string[], input?: string) => execFileSync('openssl', args, { input, encoding: 'utf8', stdio: 'pipe' });

/** One HTTPS request to a server serving `served`; resolves with what the client saw of the server's certificate. */
async function handshake(served: ServingCertificate, client: RequestOptions): Promise<{ fingerprint256: string; authorized: boolean }> {
  const server = createServer({ key: served.keyPem, cert: served.certPem }, (_req, res) => res.end('ok'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const { port } = server.address() as AddressInfo;
    return await new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/metrics', agent: false, ...client }, (res) => {
        const socket = res.socket as TLSSocket;
        const seen = { fingerprint256: socket.getPeerCertificate().fingerprint256, authorized: socket.authorized };
        res.resume().on('end', () => resolve(seen));
      });
      req.on('error', reject).end();
    });
  } finally {
    server.close();
  }
}

describe('self-signed serving certificate', () => {
  test('node parses it, its signature verifies with its own key, names and dates are as asked', () => {
    const x509 = new X509Certificate(cert.certPem);
    assert.equal(x509.verify(x509.publicKey), true);
    assert.equal(x509.checkPrivateKey(createPrivateKey(cert.keyPem)), true);
    assert.equal(x509.subject, 'CN=xdplb-agent');
    assert.equal(x509.issuer, 'CN=xdplb-agent');
    assert.equal(x509.ca, false);
    assert.equal(x509.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    for (const ip of ['127.0.0.1', '198.19.0.10', '2001:db8::1', '::1']) assert.equal(x509.checkIP(ip), ip, ip);
    assert.equal(x509.checkIP('127.0.0.2'), undefined);
    assert.equal(x509.checkHost('xdplb-agent.xdplb-system.svc'), 'xdplb-agent.xdplb-system.svc');
    assert.equal(x509.checkHost('other.example'), undefined);
    // Whole seconds: notBefore five minutes early for clock skew, notAfter 365 days on.
    assert.equal(x509.validFromDate.toISOString(), '2026-12-01T06:45:30.000Z');
    assert.equal(x509.validToDate.toISOString(), '2027-12-01T06:50:30.000Z');
    assert.equal(cert.notAfter.getTime(), x509.validToDate.getTime());
    assert.equal(cert.fingerprint256, x509.fingerprint256);
    assert.match(cert.fingerprint256, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    assert.deepEqual(x509.keyUsage, ['1.3.6.1.5.5.7.3.1']); // node's keyUsage lists the extended key usages
  });

  test('each certificate has its own key and a positive 16-byte serial, 0x00 in front when its high bit is set', () => {
    const others = Array.from({ length: 40 }, () => selfSignedCertificate({ commonName: 'xdplb-agent', now: NOW }));
    assert.equal(new Set([cert, ...others].map((c) => c.fingerprint256)).size, 41);
    assert.equal(new Set([cert, ...others].map((c) => c.keyPem)).size, 41);
    const highBit = others.filter((c) => {
      const x509 = new X509Certificate(c.certPem);
      assert.match(x509.serialNumber, /^([1-9A-F][0-9A-F]|0[1-9A-F])[0-9A-F]{30}$/); // node drops a 0x00 prefix
      const high = parseInt(x509.serialNumber.slice(0, 2), 16) >= 0x80;
      const encoded = `${high ? '021100' : '0210'}${x509.serialNumber}`; // INTEGER, length 17 or 16
      assert.ok(x509.raw.includes(Buffer.from(encoded, 'hex')), encoded);
      return high;
    });
    // 40 serials all on one side of the high bit: one run in 2^39.
    assert.ok(highBit.length > 0 && highBit.length < others.length);
  });

  test('openssl reads the SAN, basic constraints, key usages and signature algorithm', () => {
    const text = openssl(['x509', '-noout', '-text'], cert.certPem);
    assert.match(text, /Version: 3 \(0x2\)/);
    assert.match(text, /Signature Algorithm: ecdsa-with-SHA256/);
    assert.match(text, /ASN1 OID: prime256v1/);
    const san = [
      'DNS:xdplb-agent.xdplb-system.svc',
      'DNS:localhost',
      'IP Address:127.0.0.1',
      'IP Address:198.19.0.10',
      'IP Address:2001:DB8:0:0:0:0:0:1',
      'IP Address:0:0:0:0:0:0:0:1',
    ];
    assert.equal(/X509v3 Subject Alternative Name:\s*\n\s*(.*)\n/.exec(text)?.[1]?.trim(), san.join(', '));
    assert.match(text, /X509v3 Basic Constraints: critical\n\s*CA:FALSE/);
    assert.match(text, /X509v3 Key Usage: critical\n\s*Digital Signature\n/);
    assert.match(text, /X509v3 Extended Key Usage:\s*\n\s*TLS Web Server Authentication\n/);
    assert.match(text, /Not After : Dec  1 06:50:30 2027 GMT/);
  });

  test('openssl verifies it as its own trust anchor, self-signature included', () => {
    const dir = mkdtempSync(join(tmpdir(), 'xdplb-cert-'));
    try {
      const file = join(dir, 'cert.pem');
      writeFileSync(file, cert.certPem);
      // -attime: the certificate is made for NOW, which need not be the machine's clock.
      const at = String(Math.floor(NOW.getTime() / 1000) + 60);
      const out = openssl(['verify', '-check_ss_sig', '-purpose', 'sslserver', '-attime', at, '-CAfile', file, file]);
      assert.equal(out.trim(), `${file}: OK`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('dates from 2050 on are GeneralizedTime, before it UTCTime', () => {
    const late = selfSignedCertificate({ commonName: 'late', now: new Date('2049-12-01T00:00:00Z'), validDays: 60 });
    const x509 = new X509Certificate(late.certPem);
    assert.equal(x509.validFromDate.toISOString(), '2049-11-30T23:55:00.000Z');
    assert.equal(x509.validToDate.toISOString(), '2050-01-30T00:00:00.000Z');
    assert.equal(late.notAfter.toISOString(), '2050-01-30T00:00:00.000Z');
    // The DER itself: notBefore as UTCTime (tag 0x17, 13 bytes), notAfter as GeneralizedTime (0x18, 15 bytes).
    const der = x509.raw.toString('latin1');
    assert.ok(der.includes('\x17\x0d491130235500Z\x18\x0f20500130000000Z'));
  });

  test('a long common name takes the long length form', () => {
    const commonName = `agent-${'x'.repeat(200)}`;
    const x509 = new X509Certificate(selfSignedCertificate({ commonName, now: NOW }).certPem);
    assert.equal(x509.subject, `CN=${commonName}`);
    assert.equal(x509.verify(x509.publicKey), true);
  });

  test('a bad IP address, DNS name, common name or lifetime is refused clearly', () => {
    for (const ip of ['127.0.0.256', 'localhost', '2001:db8:::1', '10.0.0.0/8', '']) {
      const make = () => selfSignedCertificate({ commonName: 'a', ipAddresses: [ip] });
      assert.throws(make, /bad IP address: .*not an IPv4 or IPv6 address/, ip);
    }
    for (const dns of ['', 'has space', 'bücher.example']) {
      assert.throws(() => selfSignedCertificate({ commonName: 'a', dnsNames: [dns] }), /bad DNS name/, dns);
    }
    for (const commonName of ['', '  ']) assert.throws(() => selfSignedCertificate({ commonName }), /commonName is empty/);
    for (const validDays of [0, -1, NaN]) assert.throws(() => selfSignedCertificate({ commonName: 'a', validDays }), /validDays/);
  });

  describe('TLS handshake with node:https', () => {
    test('a pinning client sees the returned fingerprint', async () => {
      const seen = await handshake(cert, { rejectUnauthorized: false });
      assert.equal(seen.fingerprint256, cert.fingerprint256);
    });

    test('a client trusting it as CA verifies it for an IP in its SAN', async () => {
      const fresh = selfSignedCertificate({ commonName: 'xdplb-agent', ipAddresses: ['127.0.0.1'] });
      const seen = await handshake(fresh, { ca: fresh.certPem });
      assert.equal(seen.authorized, true);
      assert.equal(seen.fingerprint256, fresh.fingerprint256);
    });

    test('a client trusting it as CA refuses it for an IP not in its SAN', async () => {
      const fresh = selfSignedCertificate({ commonName: '127.0.0.1', ipAddresses: ['127.0.0.2'], dnsNames: ['localhost'] });
      await assert.rejects(handshake(fresh, { ca: fresh.certPem }), { code: 'ERR_TLS_CERT_ALTNAME_INVALID' });
    });
  });
});
