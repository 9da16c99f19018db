// A small fetch wrapper: JSON in and out, the bearer token, and one place that
// reacts to 401 (the session is over: log out).

export class ApiError extends Error {
  constructor(status, message, body = null) {
    super(message)
    this.name = 'ApiError'
    this.status = status
    this.body = body
  }
}

const hooks = {
  getToken: () => null,
  onUnauthorized: () => {},
  fetch: (...args) => globalThis.fetch(...args),
}

export function configureHttp(options) {
  Object.assign(hooks, options)
}

function isSessionRefusal(data) {
  const error = data && typeof data.error === 'string' ? data.error : ''
  return !error || /unauthori[sz]ed|token|expired/i.test(error)
}

export async function request(method, path, { body, query, auth = true, signal } = {}) {
  let url = path
  if (query) {
    const params = new URLSearchParams()
    for (const [k, v] of Object.entries(query)) {
      if (v !== undefined && v !== null && v !== '') params.set(k, String(v))
    }
    const qs = params.toString()
    if (qs) url += (url.includes('?') ? '&' : '?') + qs
  }
  const headers = { Accept: 'application/json' }
  if (body !== undefined) headers['Content-Type'] = 'application/json'
  const token = auth ? hooks.getToken() : null
  if (token) headers.Authorization = `Bearer ${token}`

  let response
  try {
    response = await hooks.fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
    })
  } catch (err) {
    if (err?.name === 'AbortError') throw err
    throw new ApiError(0, 'The server cannot be reached')
  }

  const text = await response.text()
  let data = null
  if (text) {
    try {
      data = JSON.parse(text)
    } catch {
      data = { error: text }
    }
  }
  if (!response.ok) {
    const message = (data && typeof data.error === 'string' && data.error) || `HTTP ${response.status}`
    // 401 {"error":"unauthorized"} ends the session; a 401 about something else (a wrong
    // old password, say) is an answer to show, not a reason to sign out.
    if (response.status === 401 && auth && token && isSessionRefusal(data)) hooks.onUnauthorized(message)
    throw new ApiError(response.status, message, data)
  }
  return data
}

export const sessionPath = (id) => `/api/v1/chat/sessions/${encodeURIComponent(id)}`
