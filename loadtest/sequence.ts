/**
 * Loss, duplication and order of one sender→receiver flow. Each message carries the
 * next number of its flow; the receiver keeps the highest seen and the gaps below it.
 */
export class FlowTracker {
  highest = -1;
  unique = 0;
  duplicates = 0;
  outOfOrder = 0;
  #missing: Set<number> | null = null;

  receive(seq: number): void {
    if (seq > this.highest) {
      if (seq > this.highest + 1) {
        const m = (this.#missing ??= new Set());
        // Bounded: a flow never has more than a window's worth of gaps in practice.
        for (let s = this.highest + 1; s < seq && m.size < 100_000; s++) m.add(s);
      }
      this.highest = seq;
      this.unique++;
      return;
    }
    if (this.#missing?.delete(seq)) {
      this.outOfOrder++;
      this.unique++;
      return;
    }
    this.duplicates++;
  }
}
