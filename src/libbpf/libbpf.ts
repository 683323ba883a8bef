/**
 * libbpf through koffi: the only place that calls into C. libbpf does the ELF
 * loading, relocation and map creation; this module turns its return codes
 * into exceptions that say which call failed, the errno, and what to check.
 */
import koffi from 'koffi';

const LIBBPF_SONAME = 'libbpf.so.1';

const lib = (() => {
  try {
    return koffi.load(LIBBPF_SONAME);
  } catch (err) {
    throw new Error(
      `cannot load ${LIBBPF_SONAME}: ${(err as Error).message}. Install libbpf 1.x (Debian: apt-get install libbpf1).`,
    );
  }
})();
const libc = koffi.load('libc.so.6');

koffi.opaque('bpf_object');
koffi.opaque('bpf_program');
koffi.opaque('bpf_map');
koffi.opaque('ring_buffer');

export type BpfObjectPtr = unknown;
export type BpfProgramPtr = unknown;
export type BpfMapPtr = unknown;
export type RingBufferPtr = unknown;

/** struct bpf_test_run_opts (bpf/bpf.h of libbpf 1.x). */
const TestRunOpts = koffi.struct('bpf_test_run_opts', {
  sz: 'size_t',
  data_in: 'void *',
  data_out: 'void *',
  data_size_in: 'uint32_t',
  data_size_out: 'uint32_t',
  ctx_in: 'void *',
  ctx_out: 'void *',
  ctx_size_in: 'uint32_t',
  ctx_size_out: 'uint32_t',
  retval: 'uint32_t',
  repeat: 'int',
  duration: 'uint32_t',
  flags: 'uint32_t',
  cpu: 'uint32_t',
  batch_size: 'uint32_t',
});

/** struct bpf_xdp_attach_opts: old_prog_fd makes an attach a compare-and-swap. */
const XdpAttachOpts = koffi.struct('bpf_xdp_attach_opts', {
  sz: 'size_t',
  old_prog_fd: 'int',
});

/** ring_buffer_sample_fn: called by ring_buffer__consume for each record, on the calling thread. */
export const RingSampleFn = koffi.proto('int xdplb_ring_sample_fn(void *ctx, void *data, size_t size)');

const PrintFn = koffi.proto('int xdplb_libbpf_print_fn(int level, const char *fmt, void *ap)');

export const c = {
  openFile: lib.func('bpf_object *bpf_object__open_file(const char *path, void *opts)'),
  load: lib.func('int bpf_object__load(bpf_object *obj)'),
  close: lib.func('void bpf_object__close(bpf_object *obj)'),
  findMap: lib.func('bpf_map *bpf_object__find_map_by_name(bpf_object *obj, const char *name)'),
  findProgram: lib.func('bpf_program *bpf_object__find_program_by_name(bpf_object *obj, const char *name)'),
  mapFd: lib.func('int bpf_map__fd(bpf_map *map)'),
  mapCreate: lib.func('int bpf_map_create(int map_type, const char *map_name, uint32_t key_size, uint32_t value_size, uint32_t max_entries, void *opts)'),
  mapSetPinPath: lib.func('int bpf_map__set_pin_path(bpf_map *map, const char *path)'),
  mapSetMaxEntries: lib.func('int bpf_map__set_max_entries(bpf_map *map, uint32_t max_entries)'),
  mapMaxEntries: lib.func('uint32_t bpf_map__max_entries(bpf_map *map)'),
  mapKeySize: lib.func('uint32_t bpf_map__key_size(bpf_map *map)'),
  mapValueSize: lib.func('uint32_t bpf_map__value_size(bpf_map *map)'),
  mapUnpin: lib.func('int bpf_map__unpin(bpf_map *map, const char *path)'),
  programFd: lib.func('int bpf_program__fd(bpf_program *prog)'),
  objGet: lib.func('int bpf_obj_get(const char *path)'),
  objPin: lib.func('int bpf_obj_pin(int fd, const char *path)'),
  xdpAttach: lib.func('int bpf_xdp_attach(int ifindex, int prog_fd, uint32_t flags, bpf_xdp_attach_opts *opts)'),
  xdpDetach: lib.func('int bpf_xdp_detach(int ifindex, uint32_t flags, bpf_xdp_attach_opts *opts)'),
  xdpQueryId: lib.func('int bpf_xdp_query_id(int ifindex, int flags, _Out_ uint32_t *prog_id)'),
  linkCreate: lib.func('int bpf_link_create(int prog_fd, int target_fd, int attach_type, void *opts)'),
  linkUpdate: lib.func('int bpf_link_update(int link_fd, int new_prog_fd, void *opts)'),
  linkDetach: lib.func('int bpf_link_detach(int link_fd)'),
  objGetInfoByFd: lib.func('int bpf_obj_get_info_by_fd(int fd, _Out_ uint8_t *info, _Inout_ uint32_t *len)'),
  mapUpdate: lib.func('int bpf_map_update_elem(int fd, const void *key, const void *value, uint64_t flags)'),
  mapLookup: lib.func('int bpf_map_lookup_elem(int fd, const void *key, void *value)'),
  mapDelete: lib.func('int bpf_map_delete_elem(int fd, const void *key)'),
  mapGetNextKey: lib.func('int bpf_map_get_next_key(int fd, const void *key, void *next_key)'),
  mapUpdateBatch: lib.func(
    'int bpf_map_update_batch(int fd, const void *keys, const void *values, _Inout_ uint32_t *count, void *opts)',
  ),
  mapLookupBatch: lib.func(
    'int bpf_map_lookup_batch(int fd, void *in_batch, _Out_ uint8_t *out_batch, _Out_ uint8_t *keys, _Out_ uint8_t *values, _Inout_ uint32_t *count, void *opts)',
  ),
  testRun: lib.func('int bpf_prog_test_run_opts(int prog_fd, _Inout_ bpf_test_run_opts *opts)'),
  numPossibleCpus: lib.func('int libbpf_num_possible_cpus(void)'),
  setPrint: lib.func('void *libbpf_set_print(xdplb_libbpf_print_fn *fn)'),
  ringBufferNew: lib.func('ring_buffer *ring_buffer__new(int map_fd, xdplb_ring_sample_fn *sample_cb, void *ctx, void *opts)'),
  ringBufferConsume: lib.func('int ring_buffer__consume(ring_buffer *rb)'),
  ringBufferFree: lib.func('void ring_buffer__free(ring_buffer *rb)'),
  closeFd: libc.func('int close(int fd)'),
  mmap: libc.func('void *mmap(void *addr, size_t length, int prot, int flags, int fd, intptr_t offset)'),
  munmap: libc.func('int munmap(void *addr, size_t length)'),
  getpagesize: libc.func('int getpagesize(void)'),
  vsnprintf: libc.func('int vsnprintf(_Out_ uint8_t *buf, size_t n, const char *fmt, void *ap)'),
  ifNameToIndex: libc.func('unsigned int if_nametoindex(const char *name)'),
  schedGetAffinity: libc.func('int sched_getaffinity(int pid, size_t cpusetsize, _Out_ uint8_t *mask)'),
  schedSetAffinity: libc.func('int sched_setaffinity(int pid, size_t cpusetsize, const uint8_t *mask)'),
};

export { TestRunOpts, XdpAttachOpts };

/** An errno as libbpf reports it, with the call that failed and a hint. */
export class LibbpfError extends Error {
  constructor(
    readonly call: string,
    readonly errno: number,
    detail: string,
    hint?: string,
    readonly libbpfLog: string[] = [],
  ) {
    const name = errnoName(errno);
    const logTail = libbpfLog.length ? `\nlibbpf said:\n${libbpfLog.slice(-40).join('')}` : '';
    super(`${call} failed: ${name} (${errno})${detail ? `: ${detail}` : ''}${hint ? `. ${hint}` : ''}${logTail}`);
    this.name = 'LibbpfError';
  }
}

const errnoNames = new Map<number, string>(
  Object.entries(koffi.os.errno).map(([name, value]) => [value as number, name]),
);

export function errnoName(errno: number): string {
  return errnoNames.get(errno) ?? `errno ${errno}`;
}

/** Hints for the errors a user can act on. */
export function hintFor(errno: number): string | undefined {
  switch (errnoNames.get(errno)) {
    case 'EPERM':
      return 'BPF needs CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON (or CAP_SYS_ADMIN in place of the first and last)';
    case 'ENOENT':
      return 'the path, map, program or key does not exist';
    case 'E2BIG':
      return 'a map is full or a value is larger than the map allows';
    case 'EINVAL':
      return 'the kernel rejected the arguments: check map layouts and pinned maps of an older version';
    case 'EBUSY':
      return 'another XDP program is attached to this interface in another mode or by another owner';
    case 'EOPNOTSUPP':
      return 'the driver has no native XDP: use generic mode';
    default:
      return undefined;
  }
}

/** libbpf messages since the last takeLog(); kept for error reports. */
let pendingLog: string[] = [];
const MAX_PENDING_LOG_LINES = 2000;
const LOG_LINE_BUFFER = 4096;

/** enum libbpf_print_level: WARN 0, INFO 1, DEBUG 2. Debug lines are noise in error reports. */
const LIBBPF_DEBUG = 2;

const printCallback = koffi.register((level: number, fmt: string, ap: unknown) => {
  if (level >= LIBBPF_DEBUG) return 0;
  const buf = Buffer.alloc(LOG_LINE_BUFFER);
  const n = c.vsnprintf(buf, buf.length, fmt, ap) as number;
  pendingLog.push(buf.subarray(0, Math.max(0, Math.min(n, buf.length - 1))).toString('utf8'));
  if (pendingLog.length > MAX_PENDING_LOG_LINES) pendingLog = pendingLog.slice(-MAX_PENDING_LOG_LINES / 2);
  return 0;
}, koffi.pointer(PrintFn));
c.setPrint(printCallback);

export function takeLog(): string[] {
  const out = pendingLog;
  pendingLog = [];
  return out;
}

/** Throws a LibbpfError for a negative return code (libbpf 1.x returns -errno). */
export function check(call: string, rc: number, detail = ''): number {
  if (rc < 0) throw new LibbpfError(call, -rc, detail, hintFor(-rc), takeLog());
  return rc;
}

/** Throws for a NULL pointer result, reading errno as libbpf 1.x sets it. */
export function checkPtr<T>(call: string, ptr: T | null, detail = ''): T {
  if (ptr === null) {
    const errno = koffi.errno();
    throw new LibbpfError(call, errno, detail, hintFor(errno), takeLog());
  }
  return ptr;
}

export const possibleCpus: number = check('libbpf_num_possible_cpus', c.numPossibleCpus() as number);

export function ifIndex(name: string): number {
  const index = c.ifNameToIndex(name) as number;
  if (!index) throw new Error(`network interface "${name}" does not exist (check the NIC name with "ip link")`);
  return index;
}
