/**
 * Milliseconds spent in each named phase of a long operation, each since the previous mark: a
 * breakdown for the operation's log line, so a slow start says where its time went.
 */
export class Phases {
  readonly ms: Record<string, number> = {};
  private last = performance.now();

  mark(name: string): void {
    const now = performance.now();
    this.ms[name] = Math.round(now - this.last);
    this.last = now;
  }
}
