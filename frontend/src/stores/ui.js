// What is on screen: the chat being looked at (for notifications) and the narrow-screen drawer.
import { defineStore } from 'pinia'
import { ref } from 'vue'

export const useUiStore = defineStore('ui', () => {
  const visibleSessionId = ref(null)
  const sidebarOpen = ref(false)

  function isOnScreen(sessionId) {
    const pageVisible = typeof document === 'undefined' || document.visibilityState !== 'hidden'
    return pageVisible && visibleSessionId.value === sessionId
  }

  return { visibleSessionId, sidebarOpen, isOnScreen }
})
