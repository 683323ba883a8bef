/** Opening and loading a BPF object, with maps pinned and reused across restarts. */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { BpfMap } from './bpf-map.js';
import koffi from 'koffi';
import { type BpfMapPtr, type BpfObjectPtr, c, check, checkPtr, LibbpfError, takeLog } from './libbpf.js';

const EAGAIN = koffi.os.errno.EAGAIN as number;
const LOAD_ATTEMPTS = 5;

export interface LoadOptions {
  /** bpffs directory: maps are pinned there, and reused when already pinned. */
  pinDir?: string;
  /** Overrides of map capacities, by map name (e.g. the connection table size). */
  maxEntries?: Record<string, number>;
}

export interface MapSpec {
  name: string;
  perCpu: boolean;
}

export class BpfObject {
  private closed = false;
  private readonly maps = new Map<string, BpfMap>();

  private constructor(
    readonly path: string,
    private readonly obj: BpfObjectPtr,
    private readonly mapPtrs: Map<string, BpfMapPtr>,
    readonly pinDir: string | undefined,
    specs: readonly MapSpec[],
  ) {
    for (const spec of specs) {
      const ptr = this.mapPtrs.get(spec.name)!;
      this.maps.set(
        spec.name,
        new BpfMap(
          spec.name,
          check(`bpf_map__fd(${spec.name})`, c.mapFd(ptr) as number),
          c.mapKeySize(ptr) as number,
          c.mapValueSize(ptr) as number,
          c.mapMaxEntries(ptr) as number,
          spec.perCpu,
        ),
      );
    }
  }

  /**
   * The verifier gives up with EAGAIN when a signal arrives while it works (a
   * profiler's, or SIGCHLD): that load is simply tried again.
   */
  static load(path: string, specs: readonly MapSpec[], opts: LoadOptions = {}): BpfObject {
    for (let attempt = 1; ; attempt++) {
      try {
        return BpfObject.loadOnce(path, specs, opts);
      } catch (err) {
        if (!(err instanceof LibbpfError && err.errno === EAGAIN && attempt < LOAD_ATTEMPTS)) throw err;
      }
    }
  }

  private static loadOnce(path: string, specs: readonly MapSpec[], opts: LoadOptions): BpfObject {
    const obj = checkPtr('bpf_object__open_file', c.openFile(path, null), `${path} (run "npm run build:bpf")`);
    try {
      const mapPtrs = new Map<string, BpfMapPtr>();
      if (opts.pinDir) mkdirSync(opts.pinDir, { recursive: true });
      for (const spec of specs) {
        const ptr = checkPtr(`bpf_object__find_map_by_name(${spec.name})`, c.findMap(obj, spec.name),
          `${path} has no map "${spec.name}": is it an object of another xdplb version?`);
        const max = opts.maxEntries?.[spec.name];
        if (max !== undefined) check(`bpf_map__set_max_entries(${spec.name})`, c.mapSetMaxEntries(ptr, max) as number);
        if (opts.pinDir) {
          check(`bpf_map__set_pin_path(${spec.name})`, c.mapSetPinPath(ptr, join(opts.pinDir, spec.name)) as number);
        }
        mapPtrs.set(spec.name, ptr);
      }
      check('bpf_object__load', c.load(obj) as number,
        `${path}${opts.pinDir ? ` with maps pinned in ${opts.pinDir} (a pinned map of another layout cannot be reused: remove it to start fresh)` : ''}`);
      takeLog(); // a successful load's messages are not a later error's context
      return new BpfObject(path, obj, mapPtrs, opts.pinDir, specs);
    } catch (err) {
      c.close(obj);
      throw err;
    }
  }

  map(name: string): BpfMap {
    const m = this.maps.get(name);
    if (!m) throw new Error(`no map "${name}" was loaded from ${this.path}`);
    return m;
  }

  programFd(name: string): number {
    const prog = checkPtr(`bpf_object__find_program_by_name(${name})`, c.findProgram(this.obj, name), this.path);
    return check(`bpf_program__fd(${name})`, c.programFd(prog) as number);
  }

  /** Removes the pins of every map (the maps live on while a program uses them). */
  unpinMaps(): void {
    for (const [name, ptr] of this.mapPtrs) {
      const rc = c.mapUnpin(ptr, null) as number;
      if (rc < 0 && rc !== -2) check(`bpf_map__unpin(${name})`, rc);
    }
  }

  /** Closes the object's fds; attached programs and pinned maps stay in the kernel. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    c.close(this.obj);
  }
}
