// Running executions (polled from /chat/active), their history, and cancel / kill.
import { defineStore } from 'pinia'
import { computed, ref } from 'vue'
import { api } from '@/api/client.js'

export const DEFAULT_POLL_MS = 2000
export const FAST_POLL_MS = 1000
export const HIDDEN_POLL_MS = 10000

export const useTasksStore = defineStore('tasks', () => {
  const active = ref([])
  const activeLoaded = ref(false)
  const activeError = ref('')
  const history = ref([])
  const historyTotal = ref(0)
  const historyQuery = ref({ limit: 20, offset: 0, state: '', session_id: '' })
  const historyLoading = ref(false)
  const historyError = ref('')

  const finishedListeners = new Set()
  let pollTimer = null
  let pollMs = 0
  let pageHidden = false
  const fastHolders = new Set()
  let inflight = null

  const runningCount = computed(() => active.value.length)
  const runningSessionIds = computed(() => new Set(active.value.map((e) => e.session_id)))

  function onFinished(fn) {
    finishedListeners.add(fn)
    return () => finishedListeners.delete(fn)
  }

  async function refreshActive() {
    if (inflight) return inflight
    inflight = (async () => {
      try {
        const data = await api.active()
        const list = Array.isArray(data) ? data : Array.isArray(data?.executions) ? data.executions : []
        const before = active.value
        const nowIds = new Set(list.map((e) => e.id))
        active.value = list
        activeError.value = ''
        if (activeLoaded.value) {
          for (const gone of before.filter((e) => !nowIds.has(e.id))) {
            for (const fn of finishedListeners) fn(gone)
          }
        }
        activeLoaded.value = true
      } catch (err) {
        activeError.value = err.message
      } finally {
        inflight = null
      }
    })()
    return inflight
  }

  async function refreshHistory(patch = {}) {
    historyQuery.value = { ...historyQuery.value, ...patch }
    historyLoading.value = true
    try {
      const { limit, offset, state, session_id: sessionId } = historyQuery.value
      const data = await api.executions({ limit, offset, state, session_id: sessionId })
      history.value = Array.isArray(data?.executions) ? data.executions : Array.isArray(data) ? data : []
      historyTotal.value = typeof data?.total === 'number' ? data.total : history.value.length
      historyError.value = ''
    } catch (err) {
      historyError.value = err.message
    } finally {
      historyLoading.value = false
    }
  }

  function schedule() {
    clearInterval(pollTimer)
    pollTimer = null
    let wanted = pollMs ? (fastHolders.size ? Math.min(pollMs, FAST_POLL_MS) : pollMs) : 0
    if (wanted && pageHidden) wanted = Math.max(wanted, HIDDEN_POLL_MS)
    if (wanted) pollTimer = setInterval(refreshActive, wanted)
  }

  /** Poll /chat/active while signed in; the badge on every view reads it. */
  function startPolling(ms = DEFAULT_POLL_MS) {
    pollMs = ms
    schedule()
    return refreshActive()
  }

  function stopPolling() {
    pollMs = 0
    schedule()
  }

  /** A view that shows live figures asks for faster polling while it is open. */
  function holdFastPolling(holder) {
    fastHolders.add(holder)
    schedule()
    return () => {
      fastHolders.delete(holder)
      schedule()
    }
  }

  /** A hidden tab polls slowly (it still notices runs that end, for notifications). */
  function setPageHidden(hidden) {
    if (pageHidden === hidden) return
    pageHidden = hidden
    schedule()
    if (!hidden && pollMs) refreshActive()
  }

  async function cancelExecution(id, { force = false } = {}) {
    const res = await api.cancel({ execution_id: id }, { force })
    await refreshActive()
    return res
  }

  async function cancelSession(sessionId) {
    const res = await api.cancel({ session_id: sessionId })
    refreshActive()
    return res
  }

  async function cancelAll({ force = false } = {}) {
    const res = await api.cancel({ all: true }, { force })
    await refreshActive()
    return res
  }

  function reset() {
    stopPolling()
    fastHolders.clear()
    active.value = []
    activeLoaded.value = false
    history.value = []
    historyTotal.value = 0
  }

  return {
    active,
    activeLoaded,
    activeError,
    history,
    historyTotal,
    historyQuery,
    historyLoading,
    historyError,
    runningCount,
    runningSessionIds,
    onFinished,
    refreshActive,
    refreshHistory,
    startPolling,
    stopPolling,
    holdFastPolling,
    setPageHidden,
    cancelExecution,
    cancelSession,
    cancelAll,
    reset,
  }
})
