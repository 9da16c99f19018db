import { beforeEach, describe, expect, it } from 'vitest'
import { createPinia, setActivePinia } from 'pinia'
import { sessionTitle, useSessionsStore } from '@/stores/sessions.js'
import { installFakeApi } from './helpers.js'

describe('sessions store', () => {
  let server
  let fake
  beforeEach(() => {
    setActivePinia(createPinia())
    server = [
      { session_id: 'web:chat:old', title: 'Old', archived: false, updated_at: '2024-01-01T00:00:00Z' },
      { session_id: 'web:chat:new', title: '', last_message: 'hello there', archived: false, updated_at: '2024-02-01T00:00:00Z' },
    ]
    fake = installFakeApi({
      'GET /api/v1/chat/sessions': ({ query }) => [200, { sessions: server.filter((s) => String(s.archived) === query.archived) }],
      'PATCH /api/v1/chat/sessions/web%3Achat%3Aold': ({ body }) => [200, { ...server[0], ...body }],
      'DELETE /api/v1/chat/sessions/web%3Achat%3Aold': () => [200, { status: 'ok' }],
    })
  })

  it('lists sessions newest first, with drafts on top until the server knows them', async () => {
    const s = useSessionsStore()
    const id = s.create()
    expect(id).toMatch(/^web:chat:[a-z0-9]+$/)
    await s.refresh()
    expect(s.list.map((x) => x.session_id)).toEqual([id, 'web:chat:new', 'web:chat:old'])
    server.push({ session_id: id, title: 'Mine', archived: false, updated_at: '2024-03-01T00:00:00Z' })
    await s.refresh()
    expect(s.drafts).toHaveLength(0)
    expect(s.list[0]).toMatchObject({ session_id: id, title: 'Mine' })
  })

  it('a new chat replaces unused new chats instead of piling up', () => {
    const s = useSessionsStore()
    const unused = s.create()
    const used = s.create()
    expect(s.drafts.map((d) => d.session_id)).toEqual([used])
    expect(s.byId(unused)).toBe(null)
    s.markUsed(used, 'hi')
    const next = s.create()
    expect(s.drafts.map((d) => d.session_id)).toEqual([next, used])
  })

  it('renames and archives through PATCH with the id URL-encoded', async () => {
    const s = useSessionsStore()
    await s.refresh()
    await s.rename('web:chat:old', 'Renamed')
    expect(s.byId('web:chat:old').title).toBe('Renamed')
    await s.setArchived('web:chat:old', true)
    const patches = fake.calls.filter((c) => c.method === 'PATCH')
    expect(patches.map((c) => [c.path, c.body])).toEqual([
      ['/api/v1/chat/sessions/web%3Achat%3Aold', { title: 'Renamed' }],
      ['/api/v1/chat/sessions/web%3Achat%3Aold', { archived: true }],
    ])
    expect(s.list.map((x) => x.session_id)).toEqual(['web:chat:new'])
  })

  it('renames a draft the server does not know locally, and deletes', async () => {
    const s = useSessionsStore()
    const id = s.create()
    await s.rename(id, 'Draft title')
    expect(fake.calls.filter((c) => c.method === 'PATCH')).toHaveLength(1) // answered 404
    expect(sessionTitle(s.byId(id))).toBe('Draft title')
    await s.refresh()
    await s.remove('web:chat:old')
    expect(fake.calls.some((c) => c.method === 'DELETE')).toBe(true)
    expect(s.byId('web:chat:old')).toBe(null)
  })

  it('renames a just-used draft on the server (the list has not caught up yet)', async () => {
    const s = useSessionsStore()
    const id = s.create()
    fake.routes[`PATCH /api/v1/chat/sessions/${encodeURIComponent(id)}`] = ({ body }) => [200, { session_id: id, ...body }]
    await s.rename(id, 'Server title')
    expect(fake.calls.filter((c) => c.method === 'PATCH').map((c) => c.body)).toEqual([{ title: 'Server title' }])
    expect(sessionTitle(s.byId(id))).toBe('Server title')
  })

  it('titles fall back to the last message, then to "New chat"', () => {
    expect(sessionTitle({ title: ' T ' })).toBe('T')
    expect(sessionTitle({ title: '', last_message: 'x'.repeat(100) })).toHaveLength(58)
    expect(sessionTitle({})).toBe('New chat')
  })
})
