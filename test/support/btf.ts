/** Reads an object's BTF through bpftool (which parses the ELF for us). */
import { execFileSync } from 'node:child_process';

interface BtfMember {
  name: string;
  bits_offset: number;
}
interface BtfType {
  id: number;
  kind: string;
  name?: string;
  size?: number;
  members?: BtfMember[];
  values?: { name: string; val: number }[];
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

  enumValues(name: string): Record<string, number> {
    const t = this.types.find((x) => x.kind === 'ENUM' && x.name === name);
    if (!t) throw new Error(`enum ${name} is not in the BTF`);
    return Object.fromEntries((t.values ?? []).map((v) => [v.name, v.val]));
  }
}
