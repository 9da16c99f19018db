// Short messages in the corner: what just happened (canceled, failed, saved).
import { defineStore } from 'pinia'
import { ref } from 'vue'

let nextId = 0

export const useToastStore = defineStore('toasts', () => {
  const items = ref([])
  const timers = new Map()

  function dismiss(id) {
    items.value = items.value.filter((t) => t.id !== id)
    clearTimeout(timers.get(id))
    timers.delete(id)
  }

  function push(text, { kind = 'info', timeout = 5000 } = {}) {
    const id = ++nextId
    items.value = [...items.value.slice(-4), { id, text, kind }]
    if (timeout > 0) timers.set(id, setTimeout(() => dismiss(id), timeout))
    return id
  }

  return {
    items,
    push,
    dismiss,
    info: (text, opts) => push(text, { ...opts, kind: 'info' }),
    success: (text, opts) => push(text, { ...opts, kind: 'success' }),
    error: (text, opts) => push(text, { timeout: 8000, ...opts, kind: 'error' }),
  }
})
