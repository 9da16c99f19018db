// Preferences kept in this browser: theme and notifications.
import { defineStore } from 'pinia'
import { ref, watch } from 'vue'

export const SETTINGS_STORAGE_KEY = 'kakoclaw.settings'
const THEMES = ['system', 'light', 'dark']

function load() {
  try {
    return JSON.parse(localStorage.getItem(SETTINGS_STORAGE_KEY) || '{}') || {}
  } catch {
    return {}
  }
}

export const useSettingsStore = defineStore('settings', () => {
  const saved = load()
  const theme = ref(THEMES.includes(saved.theme) ? saved.theme : 'system')
  const notificationsEnabled = ref(saved.notificationsEnabled === true)

  function systemPrefersDark() {
    return typeof window !== 'undefined' && !!window.matchMedia?.('(prefers-color-scheme: dark)').matches
  }

  const effectiveTheme = () => (theme.value === 'system' ? (systemPrefersDark() ? 'dark' : 'light') : theme.value)

  function applyTheme() {
    if (typeof document === 'undefined') return
    document.documentElement.dataset.theme = effectiveTheme()
  }

  function setTheme(value) {
    if (THEMES.includes(value)) theme.value = value
  }

  watch([theme, notificationsEnabled], () => {
    try {
      localStorage.setItem(SETTINGS_STORAGE_KEY, JSON.stringify({ theme: theme.value, notificationsEnabled: notificationsEnabled.value }))
    } catch {
      /* ignore */
    }
    applyTheme()
  })

  return { theme, notificationsEnabled, setTheme, applyTheme, effectiveTheme, THEMES }
})
