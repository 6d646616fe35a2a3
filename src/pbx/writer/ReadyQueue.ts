/** The presence writer's ready queue: a FIFO of user guids without duplicates, O(1) push, shift and membership. */
export class ReadyQueue {
  private items: Array<string> = []
  private head = 0
  private readonly members = new Set<string>()

  get size(): number {
    return this.members.size
  }

  has(guid: string): boolean {
    return this.members.has(guid)
  }

  push(guid: string): void {
    if (this.members.has(guid)) return
    this.members.add(guid)
    this.items.push(guid)
  }

  shift(): string | undefined {
    if (this.head >= this.items.length) return undefined
    const guid = this.items[this.head++]!
    this.members.delete(guid)
    // Drop the consumed prefix once it is most of the array, so memory stays proportional to what is queued.
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head)
      this.head = 0
    }
    return guid
  }
}
