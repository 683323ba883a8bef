/**
 * QUIC packets as a client sends them, enough for a balancer: the first byte
 * and the destination connection ID (README "QUIC connection IDs": our
 * layout), then bytes that stand for the encrypted rest. No QUIC library: the
 * balancer reads three bytes.
 */
import { QUIC_CONST, QUIC_MAX_SERVER_ID } from '../../src/bpf/consts.js';

/** RFC 9000: 8 bytes is the connection ID length a server should use at least. */
const CID_LEN = 8;
/** Stands for the packet number and the protected payload. */
const REST = 24;
/** The QUIC version 1 field of a long header. */
const QUIC_V1 = 0x00000001;

/** A destination connection ID in our layout, naming this server id; its other bytes fixed filler. */
export function connectionId(serverId: number, layout: number = QUIC_CONST.QUIC_CID_LAYOUT_V1): Buffer {
  const cid = Buffer.alloc(CID_LEN, 0xa5);
  cid[0] = (layout << QUIC_CONST.QUIC_CID_LAYOUT_SHIFT) | ((serverId >> 8) & QUIC_CONST.QUIC_SERVER_ID_HIGH_MASK);
  cid[1] = serverId & 0xff;
  return cid;
}

/** A 1-RTT (short header) packet to the connection with this destination connection ID. */
export function quicShortHeader(cid: Buffer): Buffer {
  return Buffer.concat([Buffer.from([QUIC_CONST.QUIC_FIXED_BIT | 0x01]), cid, Buffer.alloc(REST, 0x5a)]);
}

/** An Initial (long header) packet: the client's first, to a connection ID it made up. */
export function quicInitial(): Buffer {
  const h = Buffer.alloc(6);
  h[0] = QUIC_CONST.QUIC_LONG_HEADER | QUIC_CONST.QUIC_FIXED_BIT; // Initial, packet number length 1
  h.writeUInt32BE(QUIC_V1, 1);
  h[5] = CID_LEN;
  return Buffer.concat([h, connectionId(QUIC_MAX_SERVER_ID), Buffer.from([0]), Buffer.alloc(REST, 0x5a)]);
}
