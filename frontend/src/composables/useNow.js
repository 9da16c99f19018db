// A clock that ticks once a second while some component uses it (live durations).
import { onBeforeUnmount, onMounted, ref } from 'vue'

const now = ref(Date.now())
let users = 0
let timer = null

export function useNow() {
  onMounted(() => {
    users += 1
    if (!timer) timer = setInterval(() => (now.value = Date.now()), 1000)
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
