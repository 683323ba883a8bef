/** Reads an object's BTF through bpftool (which parses the ELF for us). */
import { execFileSync } from 'node:child_process';

interface BtfMember {
  name: string;
  bits_offset: number;
  type_id: number;
}
interface BtfType {
  id: number;
  kind: string;
  name?: string;
  size?: number;
  type_id?: number;
  nr_elems?: number;
  members?: BtfMember[];
  vars?: { type_id: number }[];
  values?: { name: string; val: number }[];
}

/** A map as its SEC(".maps") definition declares it. */
export interface BtfMapDefinition {
  type: number;
  maxEntries: number;
  flags: number;
  /** C type of the key and value ("struct vip_key", "__u32"); "" when not declared. */
  key: string;
  value: string;
}

export class Btf {
  private readonly types: BtfType[];

  constructor(objectPath: string) {
    const json = execFileSync('bpftool', ['btf', 'dump', 'file', objectPath, '-j'], { encoding: 'utf8' });
    this.types = (JSON.parse(json) as { types: BtfType[] }).types;
  }

  struct(name: string): { size: number; offsets: Record<string, number> } {
    const t = this.types.find((x) => x.kind === 'STRUCT' && x.name === name);
    if (!t) throw new Error(`struct ${name} is not in the BTF`);
    const offsets: Record<string, number> = {};
    for (const m of t.members ?? []) {
      if (m.bits_offset % 8) throw new Error(`struct ${name}.${m.name} is a bitfield`);
      offsets[m.name] = m.bits_offset / 8;
    }
    return { size: t.size ?? 0, offsets };
  }

  /**
   * Every map of the object, by name. libbpf's __uint(field, N) is a pointer
   * to an array of N elements; __type(field, T) a pointer to T.
   */
  mapDefinitions(): Record<string, BtfMapDefinition> {
    const byId = new Map(this.types.map((t) => [t.id, t]));
    const target = (m: BtfMember) => byId.get(byId.get(m.type_id)?.type_id ?? -1);
    const maps = this.types.find((t) => t.kind === 'DATASEC' && t.name === '.maps');
    const out: Record<string, BtfMapDefinition> = {};
    for (const v of maps?.vars ?? []) {
      const variable = byId.get(v.type_id)!;
      const def: BtfMapDefinition = { type: 0, maxEntries: 0, flags: 0, key: '', value: '' };
      for (const m of byId.get(variable.type_id!)?.members ?? []) {
        const t = target(m);
        if (m.name === 'type') def.type = t?.nr_elems ?? 0;
        if (m.name === 'max_entries') def.maxEntries = t?.nr_elems ?? 0;
        if (m.name === 'map_flags') def.flags = t?.nr_elems ?? 0;
        if (m.name === 'key' || m.name === 'value') def[m.name] = t?.kind === 'STRUCT' ? `struct ${t.name}` : (t?.name ?? '');
      }
      out[variable.name!] = def;
    }
    return out;
  }

  enumValues(name: string): Record<string, number> {
    const t = this.types.find((x) => x.kind === 'ENUM' && x.name === name);
    if (!t) throw new Error(`enum ${name} is not in the BTF`);
    return Object.fromEntries((t.values ?? []).map((v) => [v.name, v.val]));
  }
}
