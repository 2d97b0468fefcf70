import { readFile } from 'node:fs/promises'
import { describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import { ConfigSchema } from '../../src/config.js'

// The Kubernetes manifests in deploy/k8s/, parsed and held to what the service needs of them.

// biome-ignore lint/suspicious/noExplicitAny: manifests are free-form YAML
type Manifest = any
const manifest = async (name: string): Promise<Manifest> =>
  parse(await readFile(new URL(`../../deploy/k8s/${name}`, import.meta.url), 'utf8'))

describe('deploy/k8s', async () => {
  const deployment = await manifest('deployment.yaml')
  const container = deployment.spec.template.spec.containers[0]
  const env = Object.fromEntries(
    container.env.map((entry: { name: string; value?: string }) => [entry.name, entry])
  ) as Record<string, { value?: string; valueFrom?: Manifest }>

  it('probes readiness on /readyz and liveness on /healthz', () => {
    expect(deployment.kind).toBe('Deployment')
    expect(container.readinessProbe.httpGet.path).toBe('/readyz')
    expect(container.livenessProbe.httpGet.path).toBe('/healthz')
    expect(container.ports[0].containerPort).toBe(8080)
  })

  it('sets CPU and memory requests and limits, with POOL_THREADS tied to the CPU limit', () => {
    for (const kind of ['requests', 'limits']) {
      expect(container.resources[kind].cpu).toBeDefined()
      expect(container.resources[kind].memory).toBeDefined()
    }
    expect(env.POOL_THREADS.valueFrom.resourceFieldRef.resource).toBe('limits.cpu')
  })

  it('gives the pod longer to stop than the preStop sleep, SHUTDOWN_DELAY_MS and SHUTDOWN_GRACE_MS together', () => {
    const [sleep, seconds] = container.lifecycle.preStop.exec.command
    expect(sleep).toBe('sleep')
    const needed = Number(seconds) * 1000 + Number(env.SHUTDOWN_DELAY_MS.value) + Number(env.SHUTDOWN_GRACE_MS.value)
    expect(deployment.spec.template.spec.terminationGracePeriodSeconds * 1000).toBeGreaterThan(needed)
  })

  it('sets only variables the service reads', () => {
    for (const name of Object.keys(env)) expect(Object.keys(ConfigSchema.properties)).toContain(name)
  })

  it('has a Service, an HPA on CPU and a PodDisruptionBudget, all on the Deployment’s pods', async () => {
    const labels = deployment.spec.template.metadata.labels
    const service = await manifest('service.yaml')
    expect(service.spec.selector).toEqual(labels)
    expect(service.spec.ports[0].targetPort).toBe(container.ports[0].name)
    const hpa = await manifest('hpa.yaml')
    expect(hpa.spec.scaleTargetRef).toMatchObject({ kind: 'Deployment', name: deployment.metadata.name })
    expect(hpa.spec.metrics[0].resource.name).toBe('cpu')
    const pdb = await manifest('pdb.yaml')
    expect(pdb.kind).toBe('PodDisruptionBudget')
    expect(pdb.spec.selector.matchLabels).toEqual(labels)
  })
})
