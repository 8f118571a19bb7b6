// Records byte-range replacements against the original datagram and serializes once, so every
// byte nobody edited is copied as it was (and no edits means the very same Buffer back).

interface Edit { start: number, end: number, text: string, seq: number }

/**
 * Puts item into a list kept in order, after every element not `after` it. A message has a handful
 * of edits, mostly made in position order, so this is an append nearly always and never a sort
 * with its scratch arrays (the ByteEditor's edits, RewriteRun's change list).
 */
export function insertInOrder<T> (list: T[], item: T, after: (a: T, b: T) => boolean): void {
  let i = list.length
  while (i > 0 && after(list[i - 1], item)) i--
  if (i === list.length) list.push(item)
  else list.splice(i, 0, item)
}

function byPosition (a: Edit, b: Edit): number {
  return a.start - b.start || (a.end - a.start) - (b.end - b.start) || a.seq - b.seq
}

export class ByteEditor {
  readonly raw: Buffer
  private readonly edits: Edit[] = []

  constructor (raw: Buffer) { this.raw = raw }

  /**
   * Replace raw[start,end) with latin1 text. Returns false (and records nothing) when the range
   * overlaps an earlier edit: two handlers disagreeing about the same bytes is a bug we refuse to
   * turn into a corrupted message.
   */
  replace (start: number, end: number, text: string): boolean {
    if (start < 0 || end < start || end > this.raw.length) return false
    for (const e of this.edits) {
      const bothNonEmpty = e.end > e.start && end > start
      if (bothNonEmpty ? start < e.end && e.start < end : (start > e.start && start < e.end) || (e.start > start && e.start < end)) return false
    }
    // Kept in position order as they come, so serialize needs no sort.
    insertInOrder(this.edits, { start, end, text, seq: this.edits.length }, (a, b) => byPosition(a, b) > 0)
    return true
  }

  /** Net change in length of the edits that fall inside [start,end]. */
  deltaWithin (start: number, end: number): number {
    let d = 0
    for (const e of this.edits) if (e.start >= start && e.end <= end) d += e.text.length - (e.end - e.start)
    return d
  }

  /** @param text the raw bytes as latin1, when the caller already has them (saves a decode). */
  serialize (text?: string): Buffer {
    if (this.edits.length === 0) return this.raw
    const edits = this.edits
    const source = text ?? this.raw.toString('latin1')
    // One string built from slices and one native encode beat a Buffer.copy/write per edit.
    let out = ''
    let src = 0
    for (const e of edits) {
      out += source.slice(src, e.start) + e.text
      src = e.end
    }
    out += source.slice(src)
    return Buffer.from(out, 'latin1')
  }

}
