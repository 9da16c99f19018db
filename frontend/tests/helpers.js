// Test doubles for the two things a browser test cannot have here: the server's HTTP API
// and its WebSocket. Both record what the app sent, so tests assert on real requests.
import { configureHttp } from '@/api/http.js'

export function jsonResponse(status, body) {
  return new Response(body === undefined ? '' : JSON.stringify(body), {
    status,
    headers: { 'Content-Type': 'application/json' },
  })
}

/** routes: { 'GET /api/v1/auth/me': (req) => [200, {...}] | Response } */
export function installFakeApi(routes = {}, { token = () => null, onUnauthorized = () => {} } = {}) {
  const calls = []
  const fetch = async (url, init = {}) => {
    const method = init.method || 'GET'
    const u = new URL(url, 'http://localhost')
    const body = init.body ? JSON.parse(init.body) : undefined
    const call = { method, path: u.pathname, query: Object.fromEntries(u.searchParams), body, headers: init.headers || {} }
    calls.push(call)
    const handler = routes[`${method} ${u.pathname}`]
    if (!handler) return jsonResponse(404, { error: 'not found' })
    const result = await handler(call)
    if (result instanceof Response) return result
    const [status, payload] = result
    return jsonResponse(status, payload)
  }
  configureHttp({ fetch, getToken: token, onUnauthorized })
  return { calls, routes }
}

export class FakeWebSocket {
  static instances = []

  constructor(url) {
    this.url = url
    this.sent = []
    this.readyState = 0
    this.closed = false
    FakeWebSocket.instances.push(this)
  }

  static reset() {
    FakeWebSocket.instances = []
  }

  static last() {
    return FakeWebSocket.instances[FakeWebSocket.instances.length - 1]
  }

  send(data) {
    if (this.readyState !== 1) throw new Error('not open')
    this.sent.push(JSON.parse(data))
  }

  close(code = 1000) {
    if (this.closed) return
    this.closed = true
    this.readyState = 3
    this.onclose?.({ code })
  }

  // server side
  serverOpen() {
    this.readyState = 1
    this.onopen?.({})
  }

  serverSend(obj) {
    this.onmessage?.({ data: typeof obj === 'string' ? obj : JSON.stringify(obj) })
  }

  serverClose(code = 1006) {
    this.close(code)
  }

  sentOfType(type) {
    return this.sent.filter((m) => m.type === type)
  }
}

/** An event envelope as the server stamps it. */
export function envelope(type, seq, fields = {}, sessionId = 'web:chat:a', executionId = 'exec-1') {
  return { type, seq, session_id: sessionId, execution_id: executionId, ts: new Date(0).toISOString(), ...fields }
}
