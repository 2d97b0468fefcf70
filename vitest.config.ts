import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Tests that start worker pools and a real server process share 2 cores; run files one at a time.
    fileParallelism: false,
    testTimeout: 30_000,
    // Hooks start servers and browsers on the same loaded cores (a Chromium launch once took over
    // the default 10 s): they get what a test gets.
    hookTimeout: 30_000
  }
})
