import Type, { type Static } from 'typebox'

export const HealthSchema = Type.Object({ status: Type.Enum(['ok', 'ready', 'shutting_down']) }, { title: 'Health' })
export type Health = Static<typeof HealthSchema>
