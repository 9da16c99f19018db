// What runs while someone is signed in: the socket, the active-task polling, the session
// list, and the notifications that tie them together. Started on sign-in, stopped on sign-out.
import { api } from '@/api/client.js'
import { ApiError } from '@/api/http.js'
import { useAuthStore } from '@/stores/auth.js'
import { useChatStore } from '@/stores/chat.js'
import { useSessionsStore, sessionTitle } from '@/stores/sessions.js'
import { useSettingsStore } from '@/stores/settings.js'
import { useSocketStore } from '@/stores/socket.js'
import { useTasksStore } from '@/stores/tasks.js'
import { useUiStore } from '@/stores/ui.js'
import { useNotifications } from '@/composables/useNotifications.js'

export function createRuntime(router) {
  let cleanups = []

  function notifyFinished({ sessionId, executionId, state }) {
    const sessions = useSessionsStore()
    const settings = useSettingsStore()
    const ui = useUiStore()
    useNotifications().notifyRunFinished({
      executionId,
      sessionId,
      state,
      title: sessionTitle(sessions.byId(sessionId)),
      enabled: settings.notificationsEnabled,
      onScreen: ui.isOnScreen(sessionId),
      onClick: () => router.push({ name: 'chat', params: { sessionId } }),
    })
  }

  function start() {
    stop()
    const auth = useAuthStore()
    const socket = useSocketStore()
    const chat = useChatStore()
    const tasks = useTasksStore()
    const sessions = useSessionsStore()

    socket.configure({
      checkAuth: async () => {
        try {
          await api.me()
          return true
        } catch (err) {
          return !(err instanceof ApiError && err.status === 401)
        }
      },
    })
    cleanups.push(socket.onEvent((ev) => chat.handleEvent(ev)))
    cleanups.push(chat.onRunFinished(notifyFinished))
    cleanups.push(
      // Seen by polling only: how it ended is not known yet, so the notice does not say.
      tasks.onFinished((exec) => notifyFinished({ sessionId: exec.session_id, executionId: exec.id, state: null })),
    )
    socket.connect(auth.token)
    tasks.startPolling()
    sessions.refresh()
    if (!auth.user) auth.fetchMe().catch(() => {})

    const onOnline = () => socket.retryNow()
    const onVisible = () => {
      const visible = document.visibilityState !== 'hidden'
      tasks.setPageHidden(!visible)
      if (visible) socket.retryNow()
    }
    window.addEventListener('online', onOnline)
    document.addEventListener('visibilitychange', onVisible)
    cleanups.push(() => window.removeEventListener('online', onOnline))
    cleanups.push(() => document.removeEventListener('visibilitychange', onVisible))
  }

  function stop() {
    for (const fn of cleanups) fn()
    cleanups = []
    useSocketStore().disconnect()
    useTasksStore().reset()
    useChatStore().reset()
    useSessionsStore().reset()
  }

  return { start, stop }
}
