import { createRouter, createWebHashHistory } from 'vue-router'
import { useAuthStore } from '@/stores/auth.js'
import LoginView from '@/views/LoginView.vue'
import ChatView from '@/views/ChatView.vue'
import TasksView from '@/views/TasksView.vue'
import SettingsView from '@/views/SettingsView.vue'

// Hash URLs: a reload on any view works whatever the server does with unknown paths.
export function createAppRouter() {
  const router = createRouter({
    history: createWebHashHistory(),
    routes: [
      { path: '/', redirect: '/chat' },
      { path: '/login', name: 'login', component: LoginView, meta: { public: true, title: 'Sign in' } },
      { path: '/chat/:sessionId?', name: 'chat', component: ChatView, meta: { title: 'Chat' } },
      { path: '/tasks', name: 'tasks', component: TasksView, meta: { title: 'Tasks' } },
      { path: '/settings', name: 'settings', component: SettingsView, meta: { title: 'Settings' } },
      { path: '/:pathMatch(.*)*', redirect: '/chat' },
    ],
  })

  router.beforeEach((to) => {
    const auth = useAuthStore()
    if (!to.meta.public && !auth.isAuthenticated) {
      return { name: 'login', query: to.fullPath && to.fullPath !== '/chat' ? { redirect: to.fullPath } : {} }
    }
    if (to.name === 'login' && auth.isAuthenticated) return { path: '/chat' }
    return true
  })

  router.afterEach((to) => {
    document.title = to.meta.title ? `${to.meta.title} · KakoClaw` : 'KakoClaw'
  })

  return router
}
