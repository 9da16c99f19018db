import { beforeEach, describe, expect, it, vi } from 'vitest'
import { resetNotified, useNotifications } from '@/composables/useNotifications.js'

describe('useNotifications', () => {
  let created
  beforeEach(() => {
    resetNotified()
    created = []
    class FakeNotification {
      static permission = 'granted'
      static requestPermission = vi.fn(async () => 'granted')
      constructor(title, opts) {
        created.push({ title, ...opts })
      }
      close() {}
    }
    window.Notification = FakeNotification
  })

  it('notifies once per execution when enabled and the chat is not on screen', () => {
    const { notifyRunFinished } = useNotifications()
    const base = { executionId: 'e1', sessionId: 's', state: 'completed', title: 'My chat', enabled: true, onScreen: false }
    expect(notifyRunFinished(base)).toBe(true)
    expect(notifyRunFinished(base)).toBe(false)
    expect(created).toEqual([{ title: 'Task finished', body: 'Chat: My chat', tag: 'kakoclaw-e1' }])
  })

  it('stays quiet when the chat is on screen, when disabled, or without permission', () => {
    const { notifyRunFinished } = useNotifications()
    expect(notifyRunFinished({ executionId: 'a', enabled: true, onScreen: true })).toBe(false)
    expect(notifyRunFinished({ executionId: 'b', enabled: false, onScreen: false })).toBe(false)
    window.Notification.permission = 'denied'
    expect(notifyRunFinished({ executionId: 'c', enabled: true, onScreen: false })).toBe(false)
    expect(created).toHaveLength(0)
  })

  it('names an abnormal end in the title', () => {
    const { notifyRunFinished } = useNotifications()
    notifyRunFinished({ executionId: 'k', state: 'timed_out', enabled: true, onScreen: false })
    expect(created[0].title).toBe('Task finished (timed out)')
  })
})
