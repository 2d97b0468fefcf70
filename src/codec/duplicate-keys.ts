/**
 * JSON.parse keeps the last of two equal keys in an object, silently. A request that names a
 * field twice (two `targets`, say, or a safetensors header naming a tensor twice) is ambiguous,
 * so it is refused; these find the first key given twice in valid JSON text, as the path to it.
 */

/** Every character that opens or closes a string, an object or an array. */
const STRUCTURE = /["{}[\]]/g
const WHITESPACE = new Set([' ', '\t', '\n', '\r'])

/** The index of the quote that closes the string opened at `open`. */
function closingQuote(text: string, open: number): number {
  let end = text.indexOf('"', open + 1)
  for (;;) {
    let backslashes = 0
    while (text[end - 1 - backslashes] === '\\') backslashes++
    if (backslashes % 2 === 0) return end
    end = text.indexOf('"', end + 1)
  }
}

/** Whether the string that closes at `close` is a key: the next character that is not white space is a colon. */
function isKey(text: string, close: number): boolean {
  let i = close + 1
  while (WHITESPACE.has(text[i])) i++
  return text[i] === ':'
}

/** The key whose quotes are at `open` and `close`, as JSON.parse reads it (escapes and all). */
function keyAt(text: string, open: number, close: number): string {
  const raw = text.slice(open, close + 1)
  return raw.includes('\\') ? (JSON.parse(raw) as string) : raw.slice(1, -1)
}

/** The first key given twice in any object of `text` (valid JSON), as its path; undefined when none is. */
export function duplicateKey(text: string): string[] | undefined {
  // Per open container: its keys so far (an object) or null (an array); and the key each sits under.
  const keys: Array<Set<string> | null> = []
  const path: string[] = []
  let pending: string | null = null
  STRUCTURE.lastIndex = 0
  for (let match = STRUCTURE.exec(text); match !== null; match = STRUCTURE.exec(text)) {
    const at = match.index
    const char = text[at]
    if (char === '"') {
      const close = closingQuote(text, at)
      STRUCTURE.lastIndex = close + 1
      const container = keys.at(-1)
      if (container instanceof Set && isKey(text, close)) {
        const key = keyAt(text, at, close)
        if (container.has(key)) return [...path, key]
        container.add(key)
        pending = key
      }
    } else if (char === '{' || char === '[') {
      // The outermost container has no name; the others go by their key (or, in an array, by depth).
      if (keys.length > 0) path.push(pending ?? String(keys.length))
      keys.push(char === '{' ? new Set() : null)
      pending = null
    } else {
      keys.pop()
      if (keys.length > 0) path.pop()
    }
  }
  return undefined
}

/**
 * The first top-level key given twice in a request body (valid JSON, an object). Request bodies
 * are megabytes of numbers with a few keys: the strings are found with indexOf, which skips the
 * numbers far faster than a character-by-character scan; only a body holding a nested object
 * (which its schema refuses anyway) takes duplicateKey's full walk.
 */
export function duplicateTopLevelKey(text: string): string | undefined {
  if (text.indexOf('{', text.indexOf('{') + 1) !== -1) {
    const path = duplicateKey(text)
    return path?.length === 1 ? path[0] : undefined
  }
  const seen = new Set<string>()
  for (let open = text.indexOf('"'); open !== -1; ) {
    const close = closingQuote(text, open)
    if (isKey(text, close)) {
      const key = keyAt(text, open, close)
      if (seen.has(key)) return key
      seen.add(key)
    }
    open = text.indexOf('"', close + 1)
  }
  return undefined
}
