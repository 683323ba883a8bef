/**
 * A command prefix that runs what follows as the DaemonSet runs the agent:
 * uid 0 holding only `caps` (Kubernetes names: "BPF", "NET_ADMIN", ...) in
 * its inheritable, ambient and bounding sets, with no_new_privs. setpriv
 * execs the command, so its PID is the command's.
 */
export function setprivPrefix(caps: readonly string[]): string[] {
  const set = ['-all', ...caps.map((c) => `+${c.toLowerCase()}`)].join(',');
  return ['setpriv', '--no-new-privs', `--inh-caps=${set}`, `--ambient-caps=${set}`, `--bounding-set=${set}`, '--'];
}
