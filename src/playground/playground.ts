/**
 * The playground at GET /: three pictures of cross-entropy, each computed live by this server.
 * Bundled by esbuild (`npm run build:playground`) into dist/public/ with its page and styles.
 */
import { PlaygroundApi } from './api.js'
import { mountBatch } from './batch.js'
import { mountCurve } from './curve.js'
import { find } from './dom.js'
import { mountLogits } from './logits.js'

const keyForm = find<HTMLFormElement>(document, '#api-key')
const api = new PlaygroundApi(() => {
  keyForm.hidden = false
})
keyForm.addEventListener('submit', (event) => {
  event.preventDefault()
  const key = find<HTMLInputElement>(keyForm, 'input').value.trim()
  if (key === '') return
  keyForm.hidden = true
  api.useKey(key)
})

mountLogits(find(document, '#logits'), api)
mountCurve(find(document, '#curve'), api)
mountBatch(find(document, '#batch'), api)
