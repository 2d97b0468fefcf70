import { existsSync } from 'node:fs'
import { type Browser, chromium, type Page } from 'playwright-core'

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

/** Every console error and uncaught exception of the page, as they come. */
export function watchProblems(page: Page): string[] {
  const problems: string[] = []
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(message.text())
  })
  page.on('pageerror', (error) => problems.push(error.message))
  return problems
}

/** The problems that are the content security policy refusing something. */
export function cspViolations(problems: string[]): string[] {
  return problems.filter((text) => /Content Security Policy|Refused to/i.test(text))
}
