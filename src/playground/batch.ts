import type { CrossEntropyResponse } from '../client/index.js'
import { messageOf, type PlaygroundApi } from './api.js'
import {
  BATCH_OUTPUTS,
  BatchInputError,
  type BatchShape,
  exampleBatch,
  parseBatchJson,
  readBatchFile
} from './batch-input.js'
import { find, formatLoss, formatPerplexity, showError } from './dom.js'
import { LossGauge } from './gauge.js'
import { drawHeatmap, drawLegend } from './heatmap.js'

/**
 * The third picture: a pasted JSON request or a dropped safetensors file goes to the service, and
 * its token losses come back as a B×T heatmap with per-sequence perplexity and the batch loss
 * against log V.
 */
export function mountBatch(section: HTMLElement, api: PlaygroundApi): void {
  const text = find<HTMLTextAreaElement>(section, '#batch-json')
  const fileInput = find<HTMLInputElement>(section, '#batch-file')
  const dropzone = find(section, '.dropzone')
  const ignoreInput = find<HTMLInputElement>(section, '#batch-ignore')
  const runButton = find<HTMLButtonElement>(section, '#batch-run')
  const error = find(section, '.error')
  const result = find(section, '.batch-result')
  const heatmap = find<SVGSVGElement>(section, '[data-testid="heatmap"]')
  const lossValue = find(section, '.batch-loss')
  const facts = find(section, '.batch-facts')
  const gauge = new LossGauge(find<SVGSVGElement>(section, '.batch-gauge'))
  const legend = find<SVGSVGElement>(section, '.legend')

  const ignoreIndex = () => {
    const value = Number(ignoreInput.value)
    if (!Number.isInteger(value))
      throw new BatchInputError(`ignore_index must be an integer; it is “${ignoreInput.value}”`)
    return value
  }

  const call = api.latest<() => Promise<[CrossEntropyResponse, BatchShape]>, [CrossEntropyResponse, BatchShape]>({
    run: (compute) => compute(),
    show: ([answer, shape]) => {
      showError(error, null)
      result.hidden = false
      const { shownSequences } = drawHeatmap(heatmap, {
        shape,
        tokenLosses: (answer.token_losses as number[] | number[][]).flat(),
        sequencePerplexities: answer.sequence_perplexities ?? []
      })
      drawLegend(legend, shape.vocabulary)
      const loss = answer.loss as number | null
      lossValue.textContent = formatLoss(loss)
      gauge.show(loss, shape.vocabulary)
      const padding = shape.sequences * shape.positions - answer.count
      const logV = Math.log(shape.vocabulary)
      const shown = shownSequences < shape.sequences ? ` · heatmap shows the first ${shownSequences} sequences` : ''
      facts.textContent =
        `B × T = ${shape.sequences} × ${shape.positions}, V = ${shape.vocabulary} · ${answer.count} counted, ${padding} padding · ` +
        `perplexity ${formatPerplexity(answer.perplexity)} · log V = ${logV.toFixed(2)}` +
        (loss === null ? '' : ` · ${Math.round((100 * loss) / logV)}% of an untrained model's loss`) +
        shown
    },
    fail: (message) => showError(error, message),
    busy: (busy) => section.setAttribute('aria-busy', String(busy))
  })

  const compute = (make: () => () => Promise<[CrossEntropyResponse, BatchShape]>) => {
    try {
      call.request(make())
    } catch (problem) {
      showError(error, messageOf(problem))
    }
  }

  const fromText = () =>
    compute(() => {
      const { request, shape } = parseBatchJson(text.value, ignoreIndex())
      return async () => [await api.client.crossEntropy(request), shape]
    })

  const fromFile = (file: File) =>
    compute(() => {
      const ignore = ignoreIndex()
      return async () => {
        // Read once: the bytes checked here are the bytes sent.
        const bytes = new Uint8Array(await file.arrayBuffer())
        const shape = readBatchFile(bytes, ignore)
        const answer = await api.client.crossEntropySafetensors(bytes, { ignore_index: ignore, outputs: BATCH_OUTPUTS })
        return [answer, shape]
      }
    })

  const loadExample = () => {
    text.value = exampleBatch()
    fromText()
  }
  runButton.addEventListener('click', fromText)
  find(section, '#batch-example').addEventListener('click', loadExample)
  fileInput.addEventListener('change', () => {
    const file = fileInput.files?.[0]
    if (file !== undefined) fromFile(file)
    fileInput.value = ''
  })
  dropzone.addEventListener('dragover', (event) => {
    event.preventDefault()
    dropzone.classList.add('over')
  })
  dropzone.addEventListener('dragleave', () => dropzone.classList.remove('over'))
  dropzone.addEventListener('drop', (event) => {
    event.preventDefault()
    dropzone.classList.remove('over')
    const file = event.dataTransfer?.files[0]
    if (file !== undefined) fromFile(file)
  })
  // A first visit shows a batch at once, and the request format beside it.
  loadExample()
}
