/**
 * Hands out map slot ids round-robin. A freed id is reused as late as
 * possible, so connection-table entries that still name a removed real have
 * the longest time to expire before the id means another real.
 */
export class IdAllocator {
  private readonly used = new Set<number>();
  private cursor: number;

  constructor(
    private readonly first: number,
    private readonly end: number, // exclusive
    private readonly what: string,
  ) {
    this.cursor = first;
  }

  get size(): number {
    return this.used.size;
  }

  get capacity(): number {
    return this.end - this.first;
  }

  allocate(): number {
    for (let tried = 0; tried < this.capacity; tried++) {
      const id = this.cursor;
      this.cursor = this.cursor + 1 >= this.end ? this.first : this.cursor + 1;
      if (!this.used.has(id)) {
        this.used.add(id);
        return id;
      }
    }
    throw new Error(`no free ${this.what} slot: all ${this.capacity} are in use`);
  }

  /** Marks an id as taken (adopting state that is already in the maps). */
  claim(id: number): void {
    this.used.add(id);
  }

  free(id: number): void {
    this.used.delete(id);
  }
}
