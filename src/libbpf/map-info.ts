/**
 * What the kernel says of a map (struct bpf_map_info): the layout libbpf
 * checks before it reuses a pinned map, read without loading any object.
 */
import { existsSync } from 'node:fs';
import { basename } from 'node:path';
import { BpfMap } from './bpf-map.js';
import { c, check } from './libbpf.js';

export interface MapInfo {
  /** enum bpf_map_type. */
  type: number;
  id: number;
  keySize: number;
  valueSize: number;
  /** As the kernel made it (a per-CPU LRU hash rounds it up to a multiple of the possible CPUs). */
  maxEntries: number;
  flags: number;
  name: string;
}

/** struct bpf_map_info (linux/bpf.h): room for the whole struct; the kernel fills what it knows. */
const BPF_MAP_INFO_SIZE = 128;
const OFFSETS = { type: 0, id: 4, keySize: 8, valueSize: 12, maxEntries: 16, flags: 20, name: 24 } as const;
const BPF_OBJ_NAME_LEN = 16;

export function mapInfo(fd: number): MapInfo {
  const info = Buffer.alloc(BPF_MAP_INFO_SIZE);
  const len = [info.length];
  check('bpf_obj_get_info_by_fd(map)', c.objGetInfoByFd(fd, info, len) as number);
  const name = info.subarray(OFFSETS.name, OFFSETS.name + BPF_OBJ_NAME_LEN);
  const nul = name.indexOf(0);
  return {
    type: info.readUInt32LE(OFFSETS.type),
    id: info.readUInt32LE(OFFSETS.id),
    keySize: info.readUInt32LE(OFFSETS.keySize),
    valueSize: info.readUInt32LE(OFFSETS.valueSize),
    maxEntries: info.readUInt32LE(OFFSETS.maxEntries),
    flags: info.readUInt32LE(OFFSETS.flags),
    name: name.subarray(0, nul < 0 ? name.length : nul).toString('latin1'),
  };
}

/** An fd for a pinned object (close it with closeFd). */
function openPin(path: string): number {
  return check(`bpf_obj_get(${path})`, c.objGet(path) as number);
}

/** The info of the map pinned at path, or null when nothing is pinned there. */
export function pinnedMapInfo(path: string): MapInfo | null {
  if (!existsSync(path)) return null;
  const fd = openPin(path);
  try {
    return mapInfo(fd);
  } finally {
    c.closeFd(fd);
  }
}

/** The map pinned at path, by fd, with its own layout (close it with closeFd(map.fd)). */
export function openPinnedMap(path: string, perCpu = false): BpfMap {
  const fd = openPin(path);
  try {
    const info = mapInfo(fd);
    return new BpfMap(info.name || basename(path), fd, info.keySize, info.valueSize, info.maxEntries, perCpu);
  } catch (err) {
    c.closeFd(fd);
    throw err;
  }
}
