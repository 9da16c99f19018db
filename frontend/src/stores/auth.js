// Who is signed in: the token (kept in localStorage), its expiry, and the user.
import { defineStore } from 'pinia'
import { computed, ref } from 'vue'
import { api } from '@/api/client.js'
import { ApiError } from '@/api/http.js'

export const AUTH_STORAGE_KEY = 'kakoclaw.auth'
const MAX_TIMER_MS = 2 ** 31 - 1

function loginErrorMessage(err) {
  if (err instanceof ApiError) {
    if (err.status === 401) return 'Wrong username or password.'
    if (err.status === 429) return 'Too many sign-in attempts. Wait a minute and try again.'
    if (err.status === 0) return 'The server cannot be reached.'
    return err.message
  }
  return String(err?.message || err)
}

export const useAuthStore = defineStore('auth', () => {
  const token = ref(null)
  const expiresAt = ref(null) // epoch ms
  const user = ref(null) // {username, role}
  const notice = ref('') // why the last sign-out happened, shown on the login view
  const signedOutByUser = ref(false) // the user chose to sign out (then there is no page to return to)
  const now = ref(Date.now())
  let expiryTimer = null
  const logoutListeners = new Set()

  const isAuthenticated = computed(() => !!token.value && (!expiresAt.value || expiresAt.value > now.value))
  const isAdmin = computed(() => user.value?.role === 'admin')

  function persist() {
    try {
      if (token.value) localStorage.setItem(AUTH_STORAGE_KEY, JSON.stringify({ token: token.value, expires_at: expiresAt.value }))
      else localStorage.removeItem(AUTH_STORAGE_KEY)
    } catch {
      /* storage may be unavailable (private mode); the session then lasts for this tab */
    }
  }

  function scheduleExpiry() {
    clearTimeout(expiryTimer)
    expiryTimer = null
    if (!token.value || !expiresAt.value) return
    const wait = expiresAt.value - Date.now()
    if (wait <= 0) {
      logout('Your session has expired. Sign in again.')
      return
    }
    expiryTimer = setTimeout(() => {
      if (expiresAt.value && Date.now() >= expiresAt.value) logout('Your session has expired. Sign in again.')
      else scheduleExpiry()
    }, Math.min(wait, MAX_TIMER_MS))
  }

  function setSession(newToken, expiresAtIso) {
    token.value = newToken
    const parsed = expiresAtIso ? Date.parse(expiresAtIso) : NaN
    expiresAt.value = Number.isNaN(parsed) ? null : parsed
    now.value = Date.now()
    notice.value = ''
    persist()
    scheduleExpiry()
  }

  /** Loads a kept token; drops it if it has expired. Returns whether one is usable. */
  function restore() {
    let saved = null
    try {
      saved = JSON.parse(localStorage.getItem(AUTH_STORAGE_KEY) || 'null')
    } catch {
      saved = null
    }
    if (!saved?.token) return false
    if (saved.expires_at && saved.expires_at <= Date.now()) {
      try {
        localStorage.removeItem(AUTH_STORAGE_KEY)
      } catch {
        /* ignore */
      }
      notice.value = 'Your session has expired. Sign in again.'
      return false
    }
    token.value = saved.token
    expiresAt.value = saved.expires_at || null
    now.value = Date.now()
    scheduleExpiry()
    return true
  }

  async function login(username, password) {
    let data
    try {
      data = await api.login(username, password)
    } catch (err) {
      throw new Error(loginErrorMessage(err))
    }
    if (!data?.token) throw new Error('The server answered without a token.')
    user.value = null
    setSession(data.token, data.expires_at)
    await fetchMe().catch(() => {})
    return true
  }

  async function fetchMe() {
    const data = await api.me()
    user.value = data
    return data
  }

  function logout(reason = '', { byUser = false } = {}) {
    const was = !!token.value
    signedOutByUser.value = byUser
    clearTimeout(expiryTimer)
    expiryTimer = null
    token.value = null
    expiresAt.value = null
    user.value = null
    notice.value = reason
    persist()
    if (was) for (const fn of logoutListeners) fn(reason)
  }

  /** Called by the HTTP layer (401) and the socket when the server refuses the token. */
  function handleUnauthorized() {
    if (token.value) logout('Your session has ended. Sign in again.')
  }

  /** Changes the password; the old token stops working, so sign in again with the new one. */
  async function changePassword(oldPassword, newPassword) {
    const username = user.value?.username
    await api.changePassword(oldPassword, newPassword)
    if (!username) {
      logout('Password changed. Sign in with the new password.')
      return { relogged: false }
    }
    try {
      await login(username, newPassword)
      return { relogged: true }
    } catch {
      logout('Password changed. Sign in with the new password.')
      return { relogged: false }
    }
  }

  function onLogout(fn) {
    logoutListeners.add(fn)
    return () => logoutListeners.delete(fn)
  }

  return {
    token,
    expiresAt,
    user,
    notice,
    signedOutByUser,
    isAuthenticated,
    isAdmin,
    restore,
    login,
    fetchMe,
    logout,
    handleUnauthorized,
    changePassword,
    onLogout,
    setSession,
  }
})
