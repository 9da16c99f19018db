// A clock that ticks twice a second while some component uses it (live durations).
import { onBeforeUnmount, onMounted, ref } from 'vue'

const now = ref(Date.now())
let users = 0
let timer = null

export function useNow() {
  onMounted(() => {
    users += 1
    now.value = Date.now()
    if (!timer) timer = setInterval(() => (now.value = Date.now()), 500)
  })
  onBeforeUnmount(() => {
    users -= 1
    if (users <= 0) {
      clearInterval(timer)
      timer = null
      users = 0
    }
  })
  return now
}
