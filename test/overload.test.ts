import autocannon from 'autocannon'
import { describe, expect, it, onTestFinished } from 'vitest'
import { startServer } from './server-process.js'

// The real server, flooded: POOL_THREADS=1 and MAX_QUEUE=2 against 24 connections of medium
// requests. Bounded by count (240 requests, 127.0.0.1 only), not by time. Every answer is 200 or
// 503 (24 at once cannot all fit in 1 + 2), no socket errors, /healthz answers throughout, and
// normal requests succeed afterwards.

function mediumBody(): string {
  const [batches, steps, vocab] = [4, 64, 1024]
  const logits = Array.from({ length: batches }, (_, b) =>
    Array.from({ length: steps }, (_, t) =>
      Array.from({ length: vocab }, (_, v) => ((b * 7 + t * 13 + v * 17) % 29) / 4)
    )
  )
  const targets = Array.from({ length: batches }, (_, b) => Array.from({ length: steps }, (_, t) => (b + t) % vocab))
  return JSON.stringify({ logits, targets })
}

describe('overload', () => {
  it('sheds load with 503 and keeps /healthz answering, then serves normally again', async () => {
    const server = await startServer({ env: { POOL_THREADS: '1', MAX_QUEUE: '2' } })
    onTestFinished(() => {
      if (server.child.exitCode === null) server.child.kill('SIGKILL')
    })
    const body = mediumBody()
    const statuses = new Map<number, number>()
    const health: number[] = []
    let flooding = true
    const probing = (async () => {
      while (flooding) {
        // A deadline only a real bug reaches: the probe never waits behind the flood.
        const res = await fetch(`${server.base}/healthz`, { signal: AbortSignal.timeout(10_000) })
        health.push(res.status)
        await new Promise((resolve) => setTimeout(resolve, 100))
      }
    })()

    const result = await new Promise<autocannon.Result>((resolve, reject) => {
      const instance = autocannon(
        {
          url: `${server.base}/v1/cross-entropy`,
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body,
          connections: 24,
          amount: 240,
          timeout: 20
        },
        (error, finished) => (error ? reject(error) : resolve(finished))
      )
      instance.on('response', (_client, statusCode) => {
        statuses.set(statusCode, (statuses.get(statusCode) ?? 0) + 1)
      })
    })
    flooding = false
    await probing

    expect([...statuses.keys()].sort()).toEqual([200, 503])
    expect(statuses.get(503)).toBeGreaterThan(0)
    expect(statuses.get(200)).toBeGreaterThan(0)
    expect(result.errors).toBe(0)
    expect(result.timeouts).toBe(0)
    expect(health.length).toBeGreaterThan(0)
    expect(health.every((status) => status === 200)).toBe(true)

    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${server.base}/v1/cross-entropy`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body
      })
      expect(res.status).toBe(200)
      expect(((await res.json()) as { count: number }).count).toBe(256)
    }
    const metrics = await (await fetch(`${server.base}/metrics`)).text()
    expect(metrics).toMatch(/^xent_rejections_total\{reason="queue_full"\} [1-9]/m)
  }, 30_000)
})
