import { mkdirSync } from 'node:fs'
import { describe, expect, it, onTestFinished } from 'vitest'
import { build } from '../helper.js'
import { CHROMIUM, cspViolations, hasChromium, launchChromium, watchProblems } from './chromium.js'

if (!hasChromium) console.warn(`skipping the browser tests: ${CHROMIUM} is missing (apt-get install -y chromium)`)

describe.skipIf(!hasChromium)('Swagger UI in a real browser', () => {
  it('renders the API under helmet’s content security policy, with no violation', async () => {
    const app = await build()
    const url = await app.listen({ host: '127.0.0.1', port: 0 })
    const browser = await launchChromium()
    onTestFinished(() => browser.close())
    const page = await browser.newPage()
    const problems = watchProblems(page)
    const response = await page.goto(`${url}/docs`)
    expect(response?.headers()['content-security-policy']).toContain("default-src 'self'")
    // Swagger UI has fetched /openapi.json and drawn the operation.
    await page.locator('.opblock-summary-path', { hasText: '/v1/cross-entropy' }).waitFor({ timeout: 15_000 })
    expect(await page.locator('.opblock').count()).toBeGreaterThanOrEqual(4)
    // Opening the operation draws its schemas and the "Try it out" form.
    await page.locator('.opblock-summary-path', { hasText: '/v1/cross-entropy' }).click()
    await page.locator('.try-out__btn').waitFor({ timeout: 15_000 })
    mkdirSync(new URL('../artifacts/', import.meta.url), { recursive: true })
    await page.screenshot({ path: new URL('../artifacts/docs.png', import.meta.url).pathname, fullPage: true })
    expect(cspViolations(problems)).toEqual([])
  }, 30_000)
})
