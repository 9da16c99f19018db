import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { createPinia, setActivePinia } from 'pinia'
import { AUTH_STORAGE_KEY, useAuthStore } from '@/stores/auth.js'
import { api } from '@/api/client.js'
import { installFakeApi } from './helpers.js'

const HOUR = 3600_000

function setup(routes = {}) {
  const auth = useAuthStore()
  const fake = installFakeApi(
    {
      'POST /api/v1/auth/login': ({ body }) =>
        body.password === 'right' ? [200, { token: `tok-${body.password}`, expires_at: new Date(Date.now() + HOUR).toISOString() }] : [401, { error: 'invalid credentials' }],
      'GET /api/v1/auth/me': ({ headers }) => (headers.Authorization ? [200, { username: 'admin', role: 'admin' }] : [401, { error: 'unauthorized' }]),
      ...routes,
    },
    { token: () => auth.token, onUnauthorized: () => auth.handleUnauthorized() },
  )
  return { auth, fake }
}

describe('auth store', () => {
  beforeEach(() => {
    localStorage.clear()
    setActivePinia(createPinia())
  })
  afterEach(() => vi.useRealTimers())

  it('signs in, keeps the token and fetches the user', async () => {
    const { auth, fake } = setup()
    await auth.login('admin', 'right')
    expect(auth.isAuthenticated).toBe(true)
    expect(auth.user).toEqual({ username: 'admin', role: 'admin' })
    expect(fake.calls.find((c) => c.path === '/api/v1/auth/me').headers.Authorization).toBe('Bearer tok-right')
    expect(JSON.parse(localStorage.getItem(AUTH_STORAGE_KEY)).token).toBe('tok-right')
  })

  it('says clearly when the credentials are wrong', async () => {
    const { auth } = setup()
    await expect(auth.login('admin', 'wrong')).rejects.toThrow('Wrong username or password.')
    expect(auth.isAuthenticated).toBe(false)
  })

  it('says clearly when sign-in is rate limited', async () => {
    const { auth } = setup({ 'POST /api/v1/auth/login': () => [429, { error: 'too many attempts' }] })
    await expect(auth.login('admin', 'x')).rejects.toThrow(/Too many sign-in attempts/)
  })

  it('signs out when the token expires', async () => {
    vi.useFakeTimers()
    const { auth } = setup()
    await auth.login('admin', 'right')
    const listener = vi.fn()
    auth.onLogout(listener)
    vi.advanceTimersByTime(HOUR - 1000)
    expect(auth.isAuthenticated).toBe(true)
    vi.advanceTimersByTime(2000)
    expect(auth.token).toBe(null)
    expect(auth.notice).toMatch(/expired/)
    expect(listener).toHaveBeenCalledTimes(1)
    expect(localStorage.getItem(AUTH_STORAGE_KEY)).toBe(null)
  })

  it('restores a kept token, but not an expired one', () => {
    localStorage.setItem(AUTH_STORAGE_KEY, JSON.stringify({ token: 'kept', expires_at: Date.now() + HOUR }))
    const a = useAuthStore()
    expect(a.restore()).toBe(true)
    expect(a.token).toBe('kept')

    setActivePinia(createPinia())
    localStorage.setItem(AUTH_STORAGE_KEY, JSON.stringify({ token: 'old', expires_at: Date.now() - 1 }))
    const b = useAuthStore()
    expect(b.restore()).toBe(false)
    expect(b.token).toBe(null)
    expect(localStorage.getItem(AUTH_STORAGE_KEY)).toBe(null)
  })

  it('a 401 "unauthorized" from any call signs out; another 401 does not', async () => {
    const { auth } = setup({
      'GET /api/v1/chat/sessions': () => [401, { error: 'unauthorized' }],
      'POST /api/v1/auth/change-password': () => [401, { error: 'wrong password' }],
    })
    await auth.login('admin', 'right')
    await expect(api.changePassword('bad', 'newpassword')).rejects.toMatchObject({ status: 401 })
    expect(auth.isAuthenticated).toBe(true)
    await expect(api.listSessions()).rejects.toMatchObject({ status: 401 })
    expect(auth.isAuthenticated).toBe(false)
  })

  it('after a password change signs in again with the new password', async () => {
    const { auth, fake } = setup({
      'POST /api/v1/auth/change-password': () => [200, { status: 'ok' }],
      'POST /api/v1/auth/login': ({ body }) => [200, { token: `tok-${body.password}`, expires_at: new Date(Date.now() + HOUR).toISOString() }],
    })
    await auth.login('admin', 'first')
    const result = await auth.changePassword('first', 'second-pass')
    expect(result).toEqual({ relogged: true })
    expect(auth.token).toBe('tok-second-pass')
    expect(fake.calls.find((c) => c.path === '/api/v1/auth/change-password').body).toEqual({ old_password: 'first', new_password: 'second-pass' })
  })
})
