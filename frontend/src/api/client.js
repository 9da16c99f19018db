// Every call the app makes to the server, named after what it does (DESIGN.md, "HTTP API").
import { request, sessionPath } from './http.js'

export const api = {
  login: (username, password) =>
    request('POST', '/api/v1/auth/login', { body: { username, password }, auth: false }),
  me: () => request('GET', '/api/v1/auth/me'),
  changePassword: (oldPassword, newPassword) =>
    request('POST', '/api/v1/auth/change-password', {
      body: { old_password: oldPassword, new_password: newPassword },
    }),

  listSessions: (archived = false) =>
    request('GET', '/api/v1/chat/sessions', { query: { archived: archived ? 'true' : 'false' } }),
  getSession: (id) => request('GET', sessionPath(id)),
  updateSession: (id, patch) => request('PATCH', sessionPath(id), { body: patch }),
  deleteSession: (id) => request('DELETE', sessionPath(id)),

  cancel: (target, { force = false } = {}) =>
    request('POST', '/api/v1/chat/cancel', { body: force ? { ...target, force: true } : target }),
  active: () => request('GET', '/api/v1/chat/active'),
  executions: (query = {}) => request('GET', '/api/v1/executions', { query }),

  models: () => request('GET', '/api/v1/models'),
  tools: () => request('GET', '/api/v1/tools'),
}
