/** Counts deliveries by message id (the first four bytes of each payload): distinct and duplicated. */
export class DeliveryCount {
  private readonly seen = new Map<number, number>();

  record(payload: Buffer): void {
    const id = payload.readUInt32BE(0);
    this.seen.set(id, (this.seen.get(id) ?? 0) + 1);
  }

  get distinct(): number {
    return this.seen.size;
  }

  get duplicated(): number {
    let duplicated = 0;
    for (const count of this.seen.values()) duplicated += count - 1;
    return duplicated;
  }

  clear(): void {
    this.seen.clear();
  }
}
