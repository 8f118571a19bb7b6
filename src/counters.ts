// Named counters for status and metrics. Plain numbers in a Map: cheap on the packet path.

export class Counters {
  private readonly values = new Map<string, number>()

  inc (name: string, by = 1): void {
    this.values.set(name, (this.values.get(name) ?? 0) + by)
  }

  snapshot (): Record<string, number> {
    return Object.fromEntries([...this.values].sort(([a], [b]) => a.localeCompare(b)))
  }
}
