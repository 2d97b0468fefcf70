import { existsSync } from 'node:fs'
import { type Browser, chromium } from 'playwright-core'

// Debian's chromium (apt-get install -y chromium), driven by playwright-core: Playwright's own
// browser download is not used. .ci/run installs it when it is missing.
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
export const hasChromium = existsSync(CHROMIUM)

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking']
  })
}
