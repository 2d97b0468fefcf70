import { describe, expect, it } from 'vitest'
import { Barrier, faultsByRequestId } from '../faults.js'
import { build, metricValue } from '../helper.js'

describe('GET /metrics', () => {
  it('serves Prometheus text with durations, the pool, elements processed and rejections by reason', async () => {
    const app = await build({ API_KEYS: 'the-key', MAX_ELEMENTS: 100 })
    const headers = { authorization: 'Bearer the-key' }
    const ok = await app.inject({
      method: 'POST',
      url: '/v1/cross-entropy',
      headers,
      payload: {
        logits: [
          [1, 2, 3],
          [3, 2, 1]
        ],
        targets: [0, 1]
      }
    })
    expect(ok.statusCode).toBe(200)
    const bad = {
      method: 'POST' as const,
      url: '/v1/cross-entropy',
      headers,
      payload: { logits: [[1, 2]], targets: [5] }
    }
    expect((await app.inject(bad)).statusCode).toBe(400)
    const large = { logits: [Array(101).fill(0)], targets: [0] }
    expect((await app.inject({ method: 'POST', url: '/v1/cross-entropy', headers, payload: large })).statusCode).toBe(
      413
    )
    expect((await app.inject({ method: 'POST', url: '/v1/cross-entropy', payload: large })).statusCode).toBe(401)

    const res = await app.inject({ method: 'GET', url: '/metrics' })
    expect(res.statusCode).toBe(200)
    expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/)
    const text = res.body
    expect(text).toMatch(
      /^xent_http_request_duration_seconds_count\{route="\/v1\/cross-entropy",method="POST",status_code="200"\} 1$/m
    )
    expect(text).toMatch(
      /^xent_http_request_duration_seconds_count\{route="\/v1\/cross-entropy",method="POST",status_code="400"\} 1$/m
    )
    expect(text).toMatch(/^xent_http_request_duration_seconds_bucket\{le="0\.005",route="\/v1\/cross-entropy"/m)
    expect(text).toContain('xent_elements_processed_total 6')
    expect(text).toContain('xent_rejections_total{reason="bad_input"} 1')
    expect(text).toContain('xent_rejections_total{reason="too_large"} 1')
    expect(text).toContain('xent_rejections_total{reason="unauthorized"} 1')
    expect(text).toMatch(/^xent_pool_queue_depth 0$/m)
    expect(text).toMatch(/^xent_pool_active_workers 0$/m)
    expect(text).toMatch(/^xent_pool_workers 2$/m)
    expect(text).toMatch(/^xent_pool_utilization \d/m)
    expect(text).toMatch(/^process_resident_memory_bytes \d+/m)
  })

  it('shows the kernel memory held and the admission slots taken, while a request holds them and after', async () => {
    const faults = faultsByRequestId()
    const barrier = new Barrier()
    faults.set('held', barrier.hold())
    const app = await build({ POOL_THREADS: 1, MAX_QUEUE: 3 }, { faults: faults.source })
    const gauge = (name: string) => metricValue(app, name)
    expect(await gauge('xent_kernel_memory_used_bytes')).toBe(0)
    expect(await gauge('xent_kernel_memory_capacity_bytes')).toBe(app.engine.arena.capacity)
    expect(await gauge('xent_admission_slots')).toBe(4)
    expect(await gauge('xent_admission_slots_taken')).toBe(0)
    const held = app
      .inject({
        method: 'POST',
        url: '/v1/cross-entropy',
        headers: { 'x-request-id': 'held' },
        payload: { logits: [[1, 2, 3]], targets: [0], outputs: ['gradients'] }
      })
      .then((res) => res)
    await barrier.arrived()
    expect(await gauge('xent_kernel_memory_used_bytes')).toBe(app.engine.arena.usedBytes)
    expect(await gauge('xent_kernel_memory_used_bytes')).toBeGreaterThan(0)
    expect(await gauge('xent_admission_slots_taken')).toBe(1)
    barrier.release()
    expect((await held).statusCode).toBe(200)
    expect(await gauge('xent_kernel_memory_used_bytes')).toBe(0)
    expect(await gauge('xent_admission_slots_taken')).toBe(0)
  })
})
