import { existsSync, mkdirSync } from 'node:fs'
import type { Browser, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest'
import { PLAYGROUND_DIR } from '../../src/http/playground.js'
import { build, safetensorsFile } from '../helper.js'
import { referenceCrossEntropy } from '../oracles/reference.js'
import { CHROMIUM, cspViolations, hasChromium, launchChromium, watchProblems } from './chromium.js'

if (!hasChromium) console.warn(`skipping the browser tests: ${CHROMIUM} is missing (apt-get install -y chromium)`)

const ARTIFACTS = new URL('../artifacts/', import.meta.url)
const IGNORE = -100

let browser: Browser
beforeAll(async () => {
  if (!existsSync(`${PLAYGROUND_DIR}/index.html`)) {
    throw new Error(`${PLAYGROUND_DIR} has no playground: run \`npm run build\` first (npm test does)`)
  }
  if (hasChromium) browser = await launchChromium()
})
afterAll(() => browser?.close())

/** The playground of a live server, with every console error and CSP violation collected. */
async function openPlayground(config: Parameters<typeof build>[0] = {}): Promise<{ page: Page; problems: string[] }> {
  const app = await build(config)
  const url = await app.listen({ host: '127.0.0.1', port: 0 })
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, hasTouch: true })
  onTestFinished(() => context.close())
  const page = await context.newPage()
  const problems = watchProblems(page)
  const response = await page.goto(`${url}/`)
  expect(response?.status()).toBe(200)
  expect(response?.headers()['content-security-policy']).toContain("default-src 'self'")
  return { page, problems }
}

/** The number an element shows once the newest call for it has been answered. */
async function settled(page: Page, testId: string): Promise<number> {
  const element = page.locator(`[data-testid="${testId}"][data-state="idle"]`)
  await element.waitFor({ timeout: 10_000 })
  const text = (await element.textContent()) ?? ''
  const value = Number(text)
  if (!Number.isFinite(value)) throw new Error(`${testId} shows “${text}”, not a number`)
  return value
}

/** What the bars show: the logits, read back from their sliders. */
async function shownLogits(page: Page): Promise<number[]> {
  return Promise.all(
    Array.from({ length: 8 }, async (_, i) =>
      Number(await page.getByTestId(`logit-bar-${i}`).getAttribute('aria-valuenow'))
    )
  )
}

async function shownTarget(page: Page): Promise<number> {
  for (let i = 0; i < 8; i++) {
    if ((await page.getByTestId(`target-${i}`).getAttribute('aria-checked')) === 'true') return i
  }
  throw new Error('no word is the target')
}

/** The loss the page should show for what its bars and target say, from the float64 reference. */
async function expectedLoss(page: Page): Promise<number> {
  const logits = (await shownLogits(page)).map(Math.fround)
  const { loss } = referenceCrossEntropy({
    logits: [logits],
    targets: [await shownTarget(page)],
    ignoreIndex: IGNORE,
    labelSmoothing: 0,
    reduction: 'mean'
  })
  return loss as number
}

async function centre(page: Page, testId: string): Promise<{ x: number; y: number }> {
  await page.getByTestId(testId).scrollIntoViewIfNeeded()
  const box = await page.getByTestId(testId).boundingBox()
  if (box === null) throw new Error(`${testId} is not on screen`)
  return { x: box.x + box.width / 2, y: box.y + box.height / 2 }
}

async function dragWithMouse(page: Page, testId: string, dy: number): Promise<void> {
  const { x, y } = await centre(page, testId)
  await page.mouse.move(x, y)
  await page.mouse.down()
  await page.mouse.move(x, y + dy, { steps: 10 })
  await page.mouse.up()
}

/** A finger drag, through Chromium's own touch input (it becomes pointer events of type touch). */
async function dragWithTouch(page: Page, testId: string, dy: number): Promise<void> {
  const { x, y } = await centre(page, testId)
  const cdp = await page.context().newCDPSession(page)
  await cdp.send('Input.dispatchTouchEvent', { type: 'touchStart', touchPoints: [{ x, y }] })
  for (let step = 1; step <= 10; step++) {
    await cdp.send('Input.dispatchTouchEvent', { type: 'touchMove', touchPoints: [{ x, y: y + (dy * step) / 10 }] })
  }
  await cdp.send('Input.dispatchTouchEvent', { type: 'touchEnd', touchPoints: [] })
  await cdp.detach()
}

describe.skipIf(!hasChromium)('the playground in a real browser', () => {
  it('drags the logits: the target up drives the loss down, a wrong word up drives it up', async () => {
    const { page, problems } = await openPlayground()
    const start = await settled(page, 'loss-value')
    expect(start).toBeCloseTo(await expectedLoss(page), 4)
    const target = await shownTarget(page)
    const wrong = (target + 5) % 8

    await dragWithMouse(page, `logit-bar-${target}`, -80)
    const afterTargetUp = await settled(page, 'loss-value')
    expect(afterTargetUp).toBeLessThan(start)
    expect(afterTargetUp).toBeCloseTo(await expectedLoss(page), 4)

    // Pushed to the top, the target takes nearly all the probability: the loss goes toward 0.
    await page.getByTestId(`logit-bar-${target}`).press('Home')
    const atTop = await settled(page, 'loss-value')
    expect(atTop).toBeLessThan(0.02)
    expect(atTop).toBeCloseTo(await expectedLoss(page), 4)

    const before = await settled(page, 'loss-value')
    await dragWithMouse(page, `logit-bar-${wrong}`, -120)
    const afterWrongUp = await settled(page, 'loss-value')
    expect(afterWrongUp).toBeGreaterThan(before)
    expect(afterWrongUp).toBeCloseTo(await expectedLoss(page), 4)

    // Touch drags the same way, and the arrow keys step a focused bar.
    const beforeTouch = (await shownLogits(page))[wrong]
    await dragWithTouch(page, `logit-bar-${wrong}`, 60)
    const afterTouch = await settled(page, 'loss-value')
    expect((await shownLogits(page))[wrong]).toBeLessThan(beforeTouch)
    expect(afterTouch).toBeLessThan(afterWrongUp)
    expect(afterTouch).toBeCloseTo(await expectedLoss(page), 4)

    const beforeKeys = (await shownLogits(page))[wrong]
    await page.getByTestId(`logit-bar-${wrong}`).focus()
    for (let i = 0; i < 4; i++) await page.keyboard.press('ArrowDown')
    expect((await shownLogits(page))[wrong]).toBeCloseTo(beforeKeys - 1, 6)
    expect(await settled(page, 'loss-value')).toBeCloseTo(await expectedLoss(page), 4)

    // An even guess is the untrained model: the service gives exactly log V; Reset brings the start back.
    await page.locator('#logits-even').click()
    expect(await settled(page, 'loss-value')).toBeCloseTo(Math.log(8), 4)
    await page.locator('#logits-reset').click()
    expect(await settled(page, 'loss-value')).toBeCloseTo(start, 4)
    expect(await shownTarget(page)).toBe(target)

    // Clicking a word makes it the target; the loss is now −log p of that word.
    await page.getByTestId(`target-${wrong}`).click()
    expect(await shownTarget(page)).toBe(wrong)
    expect(await settled(page, 'loss-value')).toBeCloseTo(await expectedLoss(page), 4)
    await page.getByTestId(`target-${target}`).press('Enter')
    expect(await shownTarget(page)).toBe(target)

    expect(problems).toEqual([])
  }, 60_000)

  it('walks the −log p curve: the service gives −log p and perplexity 1/p', async () => {
    const { page, problems } = await openPlayground()
    for (const p of [0.5, 0.125, 0.01, 1]) {
      await page.locator('#p-slider').fill(String(p))
      expect(await settled(page, 'curve-loss')).toBeCloseTo(-Math.log(p), 4)
      expect(Number(await page.locator('.curve-perplexity').textContent())).toBeCloseTo(1 / p, 1)
    }
    expect(problems).toEqual([])
  }, 30_000)

  it('draws a batch as a B×T heatmap, from pasted JSON and from a dropped safetensors file', async () => {
    const { page, problems } = await openPlayground()
    const cells = page.locator('[data-testid="heatmap"] rect.cell')
    const ignored = page.locator('[data-testid="heatmap"] rect.cell.ignored')

    // The page opens on its example: 4 sequences of 12, 8 positions of padding.
    await expect.poll(() => cells.count()).toBe(4 * 12)
    expect(await ignored.count()).toBe(8)

    // Pasted JSON: B = 2, T = 3, V = 4, one padding position.
    const logits = [
      [
        [2, 0.5, -1, 0],
        [0.1, 0.2, 3, -2],
        [1, 1, 1, 1]
      ],
      [
        [0, 0, 4, 0],
        [-1, 2, 0.5, 0.3],
        [0.7, -0.2, 0.1, 1.5]
      ]
    ]
    const targets = [
      [0, 2, IGNORE],
      [1, 1, 3]
    ]
    await page.locator('#batch-json').fill(JSON.stringify({ logits, targets }))
    await page.locator('#batch-run').click()
    await expect.poll(() => cells.count()).toBe(2 * 3)
    expect(await ignored.count()).toBe(1)
    const reference = referenceCrossEntropy({
      logits: logits.flat(),
      targets: targets.flat(),
      ignoreIndex: IGNORE,
      labelSmoothing: 0,
      reduction: 'mean'
    })
    expect(Number(await page.getByTestId('batch-loss').textContent())).toBeCloseTo(reference.loss as number, 4)
    const perSequence = [reference.tokenLoss.slice(0, 2), reference.tokenLoss.slice(3, 6)].map((losses) =>
      Math.exp(losses.reduce((sum, loss) => sum + loss, 0) / losses.length)
    )
    const shownPerplexities = (await page.locator('[data-testid="heatmap"] .row-perplexity').allTextContents()).map(
      Number
    )
    expect(shownPerplexities).toHaveLength(2)
    // Shown to three significant digits.
    for (const [b, shown] of shownPerplexities.entries()) {
      expect(Math.abs(shown / perSequence[b] - 1)).toBeLessThan(0.005)
    }

    // A dropped safetensors file: B = 3, T = 5, V = 7, F32 logits and I64 targets, two padded.
    const [B, T, V] = [3, 5, 7]
    const values = Float32Array.from({ length: B * T * V }, (_, i) => Math.sin(i * 1.7) * 3)
    const fileTargets = BigInt64Array.from({ length: B * T }, (_, i) => BigInt(i === 4 || i === 9 ? IGNORE : i % V))
    const file = safetensorsFile([
      { name: 'logits', dtype: 'F32', shape: [B, T, V], data: values },
      { name: 'targets', dtype: 'I64', shape: [B, T], data: fileTargets }
    ])
    await page
      .locator('#batch-file')
      .setInputFiles({ name: 'batch.safetensors', mimeType: 'application/octet-stream', buffer: file })
    await expect.poll(() => cells.count()).toBe(B * T)
    expect(await ignored.count()).toBe(2)
    const fileReference = referenceCrossEntropy({
      logits: Array.from({ length: B * T }, (_, row) => Array.from(values.subarray(row * V, (row + 1) * V))),
      targets: Array.from(fileTargets, Number),
      ignoreIndex: IGNORE,
      labelSmoothing: 0,
      reduction: 'mean'
    })
    expect(Number(await page.getByTestId('batch-loss').textContent())).toBeCloseTo(fileReference.loss as number, 4)

    // A long (N, V) input is one sequence, wrapped onto bands of 128 positions.
    const long = Array.from({ length: 300 }, (_, i) => [Math.sin(i), Math.cos(i), 0.5])
    await page.locator('#batch-json').fill(JSON.stringify({ logits: long, targets: long.map((_, i) => i % 3) }))
    await page.locator('#batch-run').click()
    await expect.poll(() => cells.count()).toBe(300)
    expect(await page.getByTestId('heatmap').getAttribute('data-bands')).toBe('3')
    mkdirSync(ARTIFACTS, { recursive: true })
    await page.getByTestId('heatmap').screenshot({ path: new URL('heatmap-wrapped.png', ARTIFACTS).pathname })

    // Bad input gets the reason, naming the place; the last good picture stays.
    await page.locator('#batch-json').fill('{"logits": [[1, 2]], "targets": [')
    await page.locator('#batch-run').click()
    await expect.poll(() => page.locator('#batch .error').textContent()).toContain('not JSON')
    await page.locator('#batch-json').fill(
      JSON.stringify({
        logits: [
          [
            [1, 2],
            [3, 4]
          ]
        ],
        targets: [[0, 5]]
      })
    )
    await page.locator('#batch-run').click()
    await expect
      .poll(() => page.locator('#batch .error').textContent())
      .toMatch(/XENT_TARGET_OUT_OF_RANGE.*targets\[0\]\[1\]/)
    expect(await cells.count()).toBe(300)

    // The example again, from its button.
    await page.locator('#batch-example').click()
    await expect.poll(() => cells.count()).toBe(4 * 12)
    expect(await ignored.count()).toBe(8)
    await expect.poll(() => page.locator('#batch .error').isHidden()).toBe(true)

    // A picture to look at, as a CI artifact, after the first picture has been played with.
    const beforeShot = await settled(page, 'loss-value')
    await dragWithMouse(page, 'logit-bar-0', -40)
    expect(await settled(page, 'loss-value')).toBeLessThan(beforeShot)
    await page.evaluate(() => window.scrollTo(0, 0))
    mkdirSync(ARTIFACTS, { recursive: true })
    await page.screenshot({
      path: new URL('playground.png', ARTIFACTS).pathname,
      fullPage: true,
      animations: 'disabled'
    })
    await page.setViewportSize({ width: 420, height: 900 })
    await page.screenshot({
      path: new URL('playground-narrow.png', ARTIFACTS).pathname,
      fullPage: true,
      animations: 'disabled'
    })
    // A phone scrolls the charts sideways; the page itself never grows wider than the screen.
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(420)
    await page.setViewportSize({ width: 1280, height: 900 })
    const paper = () => page.evaluate(() => getComputedStyle(document.body).backgroundColor)
    const light = await paper()
    await page.emulateMedia({ colorScheme: 'dark' })
    expect(await paper()).not.toBe(light)
    await page.screenshot({
      path: new URL('playground-dark.png', ARTIFACTS).pathname,
      fullPage: true,
      animations: 'disabled'
    })
    expect(cspViolations(problems)).toEqual([])
    // The one expected console error is the service's 400 for the out-of-range target.
    expect(problems.filter((text) => !text.includes('400 (Bad Request)'))).toEqual([])
  }, 60_000)

  it('asks for an API key when the server wants one, and then computes', async () => {
    const { page, problems } = await openPlayground({ API_KEYS: 'playground-key' })
    await page.locator('#api-key').waitFor({ state: 'visible', timeout: 10_000 })
    await page.locator('#api-key-input').fill('playground-key')
    await page.locator('#api-key button').click()
    expect(await settled(page, 'loss-value')).toBeCloseTo(await expectedLoss(page), 4)
    expect(await settled(page, 'curve-loss')).toBeCloseTo(-Math.log(0.25), 4)
    expect(await page.locator('#api-key').isHidden()).toBe(true)
    expect(cspViolations(problems)).toEqual([])
  }, 30_000)
})
