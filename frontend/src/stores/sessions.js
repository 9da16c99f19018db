// The sidebar's list of chats: load, create, rename, archive, delete.
import { defineStore } from 'pinia'
import { computed, ref } from 'vue'
import { api } from '@/api/client.js'
import { ApiError } from '@/api/http.js'
import { newSessionId } from '@/lib/sessionId.js'

export function sessionTitle(s) {
  const title = (s?.title || '').trim()
  if (title) return title
  const last = (s?.last_message || '').trim()
  if (last) return last.length > 60 ? `${last.slice(0, 57)}…` : last
  return 'New chat'
}

export const useSessionsStore = defineStore('sessions', () => {
  const sessions = ref([]) // from the server (archived or not, per `showArchived`)
  const drafts = ref([]) // chats created here that have no message yet (the server does not know them)
  const showArchived = ref(false)
  const loading = ref(false)
  const error = ref('')
  let loadToken = 0

  const list = computed(() => {
    const known = new Set(sessions.value.map((s) => s.session_id))
    const draftItems = showArchived.value ? [] : drafts.value.filter((d) => !known.has(d.session_id))
    return [...draftItems, ...sessions.value]
  })

  function byId(id) {
    return sessions.value.find((s) => s.session_id === id) || drafts.value.find((d) => d.session_id === id) || null
  }

  async function refresh() {
    const token = ++loadToken
    loading.value = true
    try {
      const data = await api.listSessions(showArchived.value)
      if (token !== loadToken) return
      const items = Array.isArray(data?.sessions) ? data.sessions : []
      items.sort((a, b) => String(b.updated_at || '').localeCompare(String(a.updated_at || '')))
      sessions.value = items
      const known = new Set(items.map((s) => s.session_id))
      if (!showArchived.value) drafts.value = drafts.value.filter((d) => !known.has(d.session_id))
      error.value = ''
    } catch (err) {
      if (token === loadToken) error.value = err.message
    } finally {
      if (token === loadToken) loading.value = false
    }
  }

  let refreshTimer = null
  /** Several events in a row (a run ending, a title changing) cause one reload. */
  function refreshSoon(delay = 400) {
    clearTimeout(refreshTimer)
    refreshTimer = setTimeout(refresh, delay)
  }

  function create() {
    const id = newSessionId()
    // Unused new chats do not pile up: starting another one drops them.
    drafts.value = drafts.value.filter((d) => d.message_count > 0)
    drafts.value = [{ session_id: id, title: '', archived: false, last_message: '', updated_at: new Date().toISOString(), message_count: 0, active: false, draft: true }, ...drafts.value]
    return id
  }

  /** The first message makes a draft a real session. */
  function markUsed(id, text) {
    const draft = drafts.value.find((d) => d.session_id === id)
    if (draft) {
      draft.last_message = text
      draft.message_count = 1
    }
    refreshSoon()
  }

  const isDraft = (id) => drafts.value.some((d) => d.session_id === id) && !sessions.value.some((s) => s.session_id === id)

  /** PATCH; a draft the server does not know yet (404) is changed here only. */
  async function patch(id, body) {
    try {
      await api.updateSession(id, body)
      return true
    } catch (err) {
      if (err instanceof ApiError && err.status === 404 && isDraft(id)) return false
      throw err
    }
  }

  async function rename(id, title) {
    await patch(id, { title })
    for (const s of [...sessions.value, ...drafts.value]) if (s.session_id === id) s.title = title
    if (isDraft(id)) refreshSoon()
  }

  async function setArchived(id, archived) {
    const known = await patch(id, { archived })
    drafts.value = drafts.value.filter((d) => d.session_id !== id)
    sessions.value = sessions.value.filter((s) => s.session_id !== id)
    if (known && isDraft(id)) refreshSoon()
  }

  async function remove(id) {
    drafts.value = drafts.value.filter((d) => d.session_id !== id)
    try {
      await api.deleteSession(id)
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 404)) throw err
    }
    sessions.value = sessions.value.filter((s) => s.session_id !== id)
  }

  async function toggleArchived(value = !showArchived.value) {
    showArchived.value = value
    sessions.value = []
    await refresh()
  }

  function reset() {
    sessions.value = []
    drafts.value = []
    showArchived.value = false
    error.value = ''
    clearTimeout(refreshTimer)
  }

  return { sessions, drafts, list, showArchived, loading, error, byId, refresh, refreshSoon, create, markUsed, rename, setArchived, remove, toggleArchived, reset }
})
