import { createApp, watch } from 'vue'
import { createPinia } from 'pinia'
import App from './App.vue'
import { createAppRouter } from './router.js'
import { configureHttp } from './api/http.js'
import { useAuthStore } from './stores/auth.js'
import { useSettingsStore } from './stores/settings.js'
import { createRuntime } from './runtime.js'
import './styles/main.css'

const app = createApp(App)
const pinia = createPinia()
app.use(pinia)

const auth = useAuthStore()
configureHttp({ getToken: () => auth.token, onUnauthorized: () => auth.handleUnauthorized() })
auth.restore()

const settings = useSettingsStore()
settings.applyTheme()
window.matchMedia?.('(prefers-color-scheme: dark)').addEventListener?.('change', () => settings.applyTheme())

const router = createAppRouter()
app.use(router)

const runtime = createRuntime(router)
watch(
  () => auth.isAuthenticated,
  (signedIn, was) => {
    if (signedIn) runtime.start()
    else {
      runtime.stop()
      if (was !== undefined && router.currentRoute.value.name !== 'login') {
        // After an expiry, come back to the same page; after choosing to sign out, start afresh.
        const redirect = auth.signedOutByUser ? null : router.currentRoute.value.fullPath
        router.replace({ name: 'login', query: redirect && redirect !== '/chat' ? { redirect } : {} })
      }
    }
  },
  { immediate: true },
)
// A new token (sign-in again, password change) reconnects the socket with it.
watch(
  () => auth.token,
  (token, old) => {
    if (token && old && token !== old) runtime.start()
  },
)

app.mount('#app')
