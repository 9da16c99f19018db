// The one WebSocket to /ws/chat: connects, reconnects with backoff, keeps per-session
// sequence numbers so no event is applied twice, and resumes with `after_seq`.
import { defineStore } from 'pinia'
import { computed, ref } from 'vue'
import { backoffDelay } from '@/lib/backoff.js'

// Events that belong to the middle of a run. Right after a fresh subscribe (no after_seq)
// these can only be stale ones still in flight from before it, so they are skipped until
// the replay (which starts at `stream_start`) or a new run begins.
const MID_RUN_EVENTS = new Set(['stream', 'tool_call', 'tool_output', 'stream_end', 'ready', 'error'])
// Answers about the subscription itself, not events of the session's log: never deduplicated.
const CONTROL_EVENTS = new Set(['resync', 'subscribed', 'pong'])
const AUTH_CLOSE_CODES = new Set([1008, 4001, 4003, 4401, 4403])

function defaultUrl(token) {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:'
  return `${proto}//${location.host}/ws/chat?token=${encodeURIComponent(token)}`
}

export const useSocketStore = defineStore('socket', () => {
  const status = ref('idle') // idle | connecting | open | reconnecting
  const attempt = ref(0)
  const nextRetryAt = ref(null)
  const everConnected = ref(false)

  const options = {
    createSocket: (url) => new WebSocket(url),
    buildUrl: defaultUrl,
    pingIntervalMs: 20000,
    silenceLimitMs: 45000,
    backoff: {},
    checkAuth: null, // async () => boolean; false means the token is no longer accepted
  }

  let token = null
  let ws = null
  let retryTimer = null
  let pingTimer = null
  let lastInbound = 0
  let failedOpens = 0
  const lastSeq = new Map()
  const subscriptions = new Map() // session_id -> true
  const awaitingReplay = new Set()
  const handlers = new Set()

  const connected = computed(() => status.value === 'open')
  const showIndicator = computed(() => status.value === 'reconnecting' || (status.value === 'connecting' && everConnected.value))

  function configure(opts) {
    Object.assign(options, opts)
  }

  function onEvent(fn) {
    handlers.add(fn)
    return () => handlers.delete(fn)
  }

  function emit(ev) {
    for (const fn of handlers) {
      try {
        fn(ev)
      } catch (err) {
        console.error('event handler failed', err)
      }
    }
  }

  function connect(newToken) {
    token = newToken
    if (ws && (status.value === 'open' || status.value === 'connecting')) return
    open()
  }

  function open() {
    clearTimeout(retryTimer)
    retryTimer = null
    nextRetryAt.value = null
    if (!token) return
    status.value = 'connecting'
    let sock
    try {
      sock = options.createSocket(options.buildUrl(token))
    } catch {
      scheduleReconnect()
      return
    }
    ws = sock
    let opened = false
    sock.onopen = () => {
      if (ws !== sock) return
      opened = true
      failedOpens = 0
      attempt.value = 0
      everConnected.value = true
      status.value = 'open'
      lastInbound = Date.now()
      startPing()
      for (const sid of subscriptions.keys()) sendSubscribe(sid)
    }
    sock.onmessage = (msg) => {
      if (ws !== sock) return
      lastInbound = Date.now()
      handleRaw(msg.data)
    }
    sock.onerror = () => {}
    sock.onclose = (ev) => {
      if (ws !== sock) return
      ws = null
      stopPing()
      if (!token) {
        status.value = 'idle'
        return
      }
      if (!opened) failedOpens += 1
      if (AUTH_CLOSE_CODES.has(ev?.code) || failedOpens >= 2) verifyAuthThenReconnect()
      else scheduleReconnect()
    }
  }

  async function verifyAuthThenReconnect() {
    if (options.checkAuth) {
      let ok = true
      try {
        ok = await options.checkAuth()
      } catch {
        ok = true // the server is down, not the token: keep trying
      }
      if (!ok || !token) {
        disconnect()
        return
      }
    }
    scheduleReconnect()
  }

  function scheduleReconnect() {
    if (!token) return
    status.value = 'reconnecting'
    const delay = backoffDelay(attempt.value, options.backoff)
    attempt.value += 1
    nextRetryAt.value = Date.now() + delay
    clearTimeout(retryTimer)
    retryTimer = setTimeout(open, delay)
  }

  /** Try now instead of waiting out the backoff (the browser came back online, the tab came back). */
  function retryNow() {
    if (!token || status.value !== 'reconnecting') return
    open()
  }

  function startPing() {
    stopPing()
    pingTimer = setInterval(() => {
      if (!ws || status.value !== 'open') return
      if (Date.now() - lastInbound > options.silenceLimitMs) {
        // The connection went quiet past a ping and its answer: treat it as dead.
        const dead = ws
        ws = null
        stopPing()
        try {
          dead.close()
        } catch {
          /* ignore */
        }
        scheduleReconnect()
        return
      }
      rawSend({ type: 'ping' })
    }, options.pingIntervalMs)
  }

  function stopPing() {
    clearInterval(pingTimer)
    pingTimer = null
  }

  function disconnect() {
    token = null
    clearTimeout(retryTimer)
    retryTimer = null
    stopPing()
    const old = ws
    ws = null
    if (old) {
      try {
        old.close(1000)
      } catch {
        /* ignore */
      }
    }
    status.value = 'idle'
    attempt.value = 0
    nextRetryAt.value = null
    failedOpens = 0
    everConnected.value = false
    lastSeq.clear()
    subscriptions.clear()
    awaitingReplay.clear()
  }

  function rawSend(obj) {
    if (!ws || status.value !== 'open') return false
    try {
      ws.send(JSON.stringify(obj))
      return true
    } catch {
      return false
    }
  }

  function sendSubscribe(sid) {
    const seq = lastSeq.get(sid) || 0
    const msg = { type: 'subscribe', session_id: sid }
    if (seq > 0) msg.after_seq = seq
    else awaitingReplay.add(sid)
    return rawSend(msg)
  }

  /**
   * Watch a session. afterSeq = the last seq already applied (resume), or null for a fresh
   * load whose history came over HTTP: the server then replays the running execution.
   */
  function subscribe(sid, afterSeq = null) {
    subscriptions.set(sid, true)
    if (afterSeq === null || afterSeq === undefined) {
      lastSeq.set(sid, 0)
      awaitingReplay.add(sid)
    } else {
      lastSeq.set(sid, afterSeq)
      awaitingReplay.delete(sid)
    }
    return sendSubscribe(sid)
  }

  function isSubscribed(sid) {
    return subscriptions.has(sid)
  }

  function forget(sid) {
    subscriptions.delete(sid)
    lastSeq.delete(sid)
    awaitingReplay.delete(sid)
  }

  function send(obj) {
    return rawSend(obj)
  }

  function getLastSeq(sid) {
    return lastSeq.get(sid) || 0
  }

  /** Whether an event is new (and records its seq); false for duplicates and stale ones. */
  function accept(ev) {
    const sid = ev.session_id
    if (!sid || typeof ev.seq !== 'number' || CONTROL_EVENTS.has(ev.type)) return true
    if (awaitingReplay.has(sid)) {
      if (MID_RUN_EVENTS.has(ev.type)) return false
      awaitingReplay.delete(sid)
    }
    const last = lastSeq.get(sid) || 0
    if (ev.seq <= last) return false
    lastSeq.set(sid, ev.seq)
    return true
  }

  function handleRaw(data) {
    let ev
    try {
      ev = JSON.parse(data)
    } catch {
      return
    }
    if (!ev || typeof ev !== 'object' || typeof ev.type !== 'string') return
    if (ev.type === 'pong') return
    if (!accept(ev)) return
    emit(ev)
  }

  return {
    status,
    attempt,
    nextRetryAt,
    connected,
    showIndicator,
    configure,
    connect,
    disconnect,
    retryNow,
    subscribe,
    isSubscribed,
    forget,
    send,
    onEvent,
    getLastSeq,
    handleRaw,
  }
})
