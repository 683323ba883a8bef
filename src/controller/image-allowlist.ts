/**
 * Which images an XdpBalancer may run. Write access to XdpBalancers is root on
 * the nodes (spec.image becomes a privileged, host-network DaemonSet), so the
 * controller runs only images the cluster admin allowed when starting it
 * (--allowed-images), by default its own image's repository.
 *
 * An entry is compared with spec.image as written (no registry or
 * "library/" is filled in):
 * - `REPOSITORY` (e.g. `registry.example/xdplb`): that repository, any tag or digest;
 * - `PREFIX/` (ends with a slash, e.g. `registry.example/team/`): every repository under it;
 * - `REPOSITORY:TAG` or `REPOSITORY@DIGEST`: that image only.
 * `registry.example/xdplb` does not allow `registry.example/xdplb-other`.
 */

export class ImageAllowlist {
  private constructor(readonly entries: readonly string[], private readonly source: string) {}

  /** From --allowed-images: entries separated by commas (blanks around them ignored). */
  static parse(flag: string, source = '--allowed-images'): ImageAllowlist {
    const entries = flag.split(',').map((e) => e.trim()).filter(Boolean);
    if (entries.length === 0) throw new Error(`${source} names no image: give REPOSITORY or PREFIX/ entries, separated by commas`);
    for (const e of entries) {
      if (/\s/.test(e)) throw new Error(`${source}: "${e}" is not an image, repository or prefix`);
    }
    return new ImageAllowlist(entries, source);
  }

  /** The repository of `image` (the controller's own): any tag or digest of it. */
  static ofRepository(image: string, source: string): ImageAllowlist {
    return new ImageAllowlist([imageRepository(image)], source);
  }

  /** Nothing is allowed (no image is known to allow). */
  static none(source: string): ImageAllowlist {
    return new ImageAllowlist([], source);
  }

  allows(image: string): boolean {
    return this.entries.some((e) => image === e || (e.endsWith('/') ? image.startsWith(e) : image.startsWith(`${e}:`) || image.startsWith(`${e}@`)));
  }

  /** Why `image` is refused, saying what to do; null when it is allowed. */
  refusal(image: string): string | null {
    if (this.allows(image)) return null;
    const allowed = this.entries.length ? `only ${this.entries.join(', ')} (${this.source})` : `no image (${this.source})`;
    return `image "${image}" is not allowed: the controller runs agents from ${allowed}; use an allowed image, ` +
      'or have the cluster admin add it to the controller\'s --allowed-images (XDPLB_ALLOWED_IMAGES)';
  }
}

/** `registry:5000/a/b:tag@sha256:...` -> `registry:5000/a/b`: a port's colon is before the last slash, a tag's after it. */
export function imageRepository(image: string): string {
  const noDigest = image.split('@')[0]!;
  const colon = noDigest.lastIndexOf(':');
  return colon > noDigest.lastIndexOf('/') ? noDigest.slice(0, colon) : noDigest;
}
