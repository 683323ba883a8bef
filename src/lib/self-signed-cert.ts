/**
 * A self-signed X.509 v3 serving certificate made in process: the agent serves
 * /metrics and /trace over HTTPS and, given no certificate, makes its own at
 * start; clients pin its SHA-256 fingerprint. Node can sign but not build
 * certificates, so the few DER structures RFC 5280 needs are written here.
 */
import { createSign, generateKeyPairSync, randomBytes, X509Certificate } from 'node:crypto';
import { IP_BYTES, parseIp } from './ip.js';

export interface ServingCertificate {
  certPem: string;
  keyPem: string;
  /** as node's X509Certificate.fingerprint256: uppercase hex pairs joined by ':' */
  fingerprint256: string;
  notAfter: Date;
}

// DER tags (X.690). Context tags: [0] version and [3] extensions are explicit
// (constructed); GeneralName's dNSName [2] and iPAddress [7] implicit (primitive).
const TAG_BOOLEAN = 0x01;
const TAG_INTEGER = 0x02;
const TAG_BIT_STRING = 0x03;
const TAG_OCTET_STRING = 0x04;
const TAG_OID = 0x06;
const TAG_UTF8_STRING = 0x0c;
const TAG_UTC_TIME = 0x17;
const TAG_GENERALIZED_TIME = 0x18;
const TAG_SEQUENCE = 0x30;
const TAG_SET = 0x31;
const TAG_VERSION = 0xa0;
const TAG_EXTENSIONS = 0xa3;
const TAG_SAN_DNS = 0x82;
const TAG_SAN_IP = 0x87;

const OID_ECDSA_WITH_SHA256 = '1.2.840.10045.4.3.2';
const OID_COMMON_NAME = '2.5.4.3';
const OID_KEY_USAGE = '2.5.29.15';
const OID_SUBJECT_ALT_NAME = '2.5.29.17';
const OID_BASIC_CONSTRAINTS = '2.5.29.19';
const OID_EXT_KEY_USAGE = '2.5.29.37';
const OID_SERVER_AUTH = '1.3.6.1.5.5.7.3.1';

const VERSION_3 = 2; // X.509 counts versions from 0
const SERIAL_BYTES = 16;
const DER_TRUE = 0xff;
/** The sign bit of a DER INTEGER's first byte; in lengths, the long-form flag; in OID arcs, "more bytes follow". */
const HIGH_BIT = 0x80;
const LOW_7_BITS = 0x7f;
/** keyUsage's BIT STRING: digitalSignature is bit 0, the byte's high bit; DER counts the 7 trailing zeros unused. */
const KEY_USAGE_DIGITAL_SIGNATURE = Buffer.from([7, HIGH_BIT]);
/** An OID's first two arcs share its first number: 40 * first + second (X.690 8.19.4). */
const OID_FIRST_ARCS = 40;
const IPV4_BYTES = 4;
const CLOCK_SKEW_MS = 5 * 60_000;
const DAY_MS = 86_400_000;
/** RFC 5280 4.1.2.5: UTCTime for 1950 through 2049, GeneralizedTime otherwise. */
const UTC_TIME_YEARS = [1950, 2050] as const;
const PEM_LINE = 64;

function der(tag: number, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content);
  if (body.length < HIGH_BIT) return Buffer.concat([Buffer.from([tag, body.length]), body]);
  // Long form: HIGH_BIT | count of length bytes, then the length big-endian.
  const len: number[] = [];
  for (let n = body.length; n > 0; n >>>= 8) len.unshift(n & 0xff);
  return Buffer.concat([Buffer.from([tag, HIGH_BIT | len.length, ...len]), body]);
}

/** A positive big-endian integer, minimal already: a 0x00 in front when its high bit would read as a sign. */
function integer(bytes: Buffer): Buffer {
  return der(TAG_INTEGER, Buffer.from(bytes[0]! >= HIGH_BIT ? [0] : []), bytes);
}

function oid(dotted: string): Buffer {
  const [first = 0, second = 0, ...rest] = dotted.split('.').map(Number);
  const bytes: number[] = [];
  for (const arc of [first * OID_FIRST_ARCS + second, ...rest]) {
    // Base 128, most significant group first, every byte but the last with its high bit set.
    const groups = [arc & LOW_7_BITS];
    for (let v = arc >>> 7; v > 0; v >>>= 7) groups.unshift((v & LOW_7_BITS) | HIGH_BIT);
    bytes.push(...groups);
  }
  return der(TAG_OID, Buffer.from(bytes));
}

function time(date: Date): Buffer {
  const digits = date.toISOString().replace(/[-:T]/g, '').slice(0, 14); // YYYYMMDDHHMMSS
  const year = date.getUTCFullYear();
  const utc = year >= UTC_TIME_YEARS[0] && year < UTC_TIME_YEARS[1];
  return der(utc ? TAG_UTC_TIME : TAG_GENERALIZED_TIME, Buffer.from(`${utc ? digits.slice(2) : digits}Z`));
}

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  const flag = critical ? [der(TAG_BOOLEAN, Buffer.from([DER_TRUE]))] : []; // DER omits the default FALSE
  return der(TAG_SEQUENCE, oid(id), ...flag, der(TAG_OCTET_STRING, value));
}

const pem = (label: string, body: Buffer) =>
  `-----BEGIN ${label}-----\n${body.toString('base64').replace(new RegExp(`.{1,${PEM_LINE}}`, 'g'), '$&\n')}-----END ${label}-----\n`;

export function selfSignedCertificate(opts: {
  commonName: string;
  ipAddresses?: string[];
  dnsNames?: string[];
  validDays?: number;
  now?: Date;
}): ServingCertificate {
  const { commonName, ipAddresses = [], dnsNames = [], validDays = 365, now = new Date() } = opts;
  if (!commonName.trim()) throw new Error('self-signed certificate: commonName is empty');
  if (!(validDays > 0)) throw new Error(`self-signed certificate: validDays ${validDays} is not positive`);
  const sanIps = ipAddresses.map((text) => {
    try {
      const ip = parseIp(text);
      return der(TAG_SAN_IP, ip.bytes.subarray(0, ip.family === 4 ? IPV4_BYTES : IP_BYTES));
    } catch (e) {
      throw new Error(`self-signed certificate: bad IP address: ${(e as Error).message}`);
    }
  });
  const sanDns = dnsNames.map((name) => {
    // dNSName is an IA5String: printable ASCII, no spaces.
    if (!/^[\x21-\x7e]+$/.test(name)) throw new Error(`self-signed certificate: bad DNS name "${name}"`);
    return der(TAG_SAN_DNS, Buffer.from(name, 'ascii'));
  });

  // Whole seconds: the certificate holds no more, and notAfter should equal what it holds.
  const start = Math.floor(now.getTime() / 1000) * 1000;
  const notBefore = new Date(start - CLOCK_SKEW_MS);
  const notAfter = new Date(start + Math.round(validDays * DAY_MS));
  // A leading zero byte would not be minimal DER; integer() keeps it positive.
  const serial = randomBytes(SERIAL_BYTES);
  serial[0] ||= 1;

  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const algorithm = der(TAG_SEQUENCE, oid(OID_ECDSA_WITH_SHA256)); // parameters absent (RFC 5758)
  const name = der(TAG_SEQUENCE, der(TAG_SET, der(TAG_SEQUENCE, oid(OID_COMMON_NAME), der(TAG_UTF8_STRING, Buffer.from(commonName)))));
  const extensions = [
    // GeneralNames may not be empty: no SAN extension without names.
    ...(sanIps.length + sanDns.length > 0 ? [extension(OID_SUBJECT_ALT_NAME, false, der(TAG_SEQUENCE, ...sanDns, ...sanIps))] : []),
    extension(OID_BASIC_CONSTRAINTS, true, der(TAG_SEQUENCE)), // cA FALSE is the default, so omitted
    extension(OID_KEY_USAGE, true, der(TAG_BIT_STRING, KEY_USAGE_DIGITAL_SIGNATURE)),
    extension(OID_EXT_KEY_USAGE, false, der(TAG_SEQUENCE, oid(OID_SERVER_AUTH))),
  ];
  const tbs = der(
    TAG_SEQUENCE,
    der(TAG_VERSION, integer(Buffer.from([VERSION_3]))),
    integer(serial),
    algorithm,
    name, // issuer: self-signed
    der(TAG_SEQUENCE, time(notBefore), time(notAfter)),
    name, // subject
    publicKey.export({ type: 'spki', format: 'der' }),
    der(TAG_EXTENSIONS, der(TAG_SEQUENCE, ...extensions)),
  );
  const signature = createSign('sha256').update(tbs).sign(privateKey); // DER ECDSA-Sig-Value
  const cert = der(TAG_SEQUENCE, tbs, algorithm, der(TAG_BIT_STRING, Buffer.from([0]), signature)); // 0 unused bits

  return {
    certPem: pem('CERTIFICATE', cert),
    keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    fingerprint256: new X509Certificate(cert).fingerprint256,
    notAfter,
  };
}
