/**
 * The certificate a daemon serves its authenticated endpoints with. Bearer
 * tokens must not cross the node network in clear text: an endpoint that
 * reviews tokens serves HTTPS, with the certificate given (a Secret's files,
 * e.g. from cert-manager) or, without one, a self-signed one made at start.
 * Clients pin a self-signed certificate by its SHA-256 fingerprint, which the
 * agent publishes through the API server in its node's status entry.
 */
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type RequestListener, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { X509Certificate } from 'node:crypto';
import { selfSignedCertificate } from './self-signed-cert.js';

export interface ServingTls {
  cert: string;
  key: string;
  /** As X509Certificate.fingerprint256: what clients compare. */
  fingerprint256: string;
  /** Whether it was made at start (clients pin it) or given (clients may verify it against its CA). */
  selfSigned: boolean;
}

export interface ServingTlsOptions {
  certFile?: string;
  keyFile?: string;
  /** For a self-signed certificate: its subject and the addresses it names. */
  commonName: string;
  ipAddresses?: string[];
}

export function servingTls(opts: ServingTlsOptions): ServingTls {
  if (!!opts.certFile !== !!opts.keyFile) {
    throw new Error('give both --tls-cert-file and --tls-key-file, or neither (a self-signed certificate is made at start)');
  }
  if (opts.certFile && opts.keyFile) {
    const read = (file: string, what: string) => {
      try {
        return readFileSync(file, 'utf8');
      } catch (err) {
        throw new Error(`cannot read the TLS ${what} ${file}: ${(err as Error).message}`);
      }
    };
    const cert = read(opts.certFile, 'certificate');
    const key = read(opts.keyFile, 'key');
    let x509: X509Certificate;
    try {
      x509 = new X509Certificate(cert);
    } catch (err) {
      throw new Error(`${opts.certFile} holds no PEM certificate: ${(err as Error).message}`);
    }
    return { cert, key, fingerprint256: x509.fingerprint256, selfSigned: false };
  }
  const made = selfSignedCertificate({ commonName: opts.commonName, ipAddresses: opts.ipAddresses });
  return { cert: made.certPem, key: made.keyPem, fingerprint256: made.fingerprint256, selfSigned: true };
}

/** An HTTPS server with `tls`, else plain HTTP (loopback-only endpoints). */
export function createEndpointServer(tls: ServingTls | undefined, handler: RequestListener): Server {
  return tls ? createHttpsServer({ cert: tls.cert, key: tls.key }, handler) : createHttpServer(handler);
}
