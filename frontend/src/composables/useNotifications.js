// Browser notifications for runs that end while their chat is not on screen.
import { ref } from 'vue'

const isSupported = () => typeof window !== 'undefined' && 'Notification' in window
const supported = isSupported()
const permission = ref(supported ? window.Notification.permission : 'unsupported')
const notified = new Set()
const NOTIFIED_LIMIT = 500

export function useNotifications() {
  async function requestPermission() {
    if (!isSupported()) return 'unsupported'
    try {
      permission.value = await window.Notification.requestPermission()
    } catch {
      permission.value = window.Notification.permission
    }
    return permission.value
  }

  /**
   * Notifies once per execution. `enabled` is the user's setting; `onScreen` says whether the
   * chat is being looked at right now (then nothing is shown).
   */
  function notifyRunFinished({ executionId, sessionId, state, title, enabled, onScreen, onClick }) {
    if (!executionId || notified.has(executionId)) return false
    notified.add(executionId)
    if (notified.size > NOTIFIED_LIMIT) notified.delete(notified.values().next().value)
    if (!isSupported() || !enabled || onScreen) return false
    if (window.Notification.permission !== 'granted') return false
    const ended = state && state !== 'completed' ? ` (${String(state).replace('_', ' ')})` : ''
    try {
      const n = new window.Notification(`Task finished${ended}`, {
        body: title ? `Chat: ${title}` : `Chat ${sessionId}`,
        tag: `kakoclaw-${executionId}`,
      })
      n.onclick = () => {
        window.focus()
        onClick?.()
        n.close()
      }
      return true
    } catch {
      return false
    }
  }

  return { supported, permission, requestPermission, notifyRunFinished }
}

/** For tests: forget which executions were already announced. */
export function resetNotified() {
  notified.clear()
}
