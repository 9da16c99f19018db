// Conversations: history loaded over HTTP, then live events from the socket applied on top.
// Every opened chat stays subscribed, so a run goes on being followed while another view is
// on screen, and coming back shows the whole reply.
import { defineStore } from 'pinia'
import { reactive } from 'vue'
import { api } from '@/api/client.js'
import { ApiError } from '@/api/http.js'
import {
  appendText,
  appendToolOutput,
  assistantMessage,
  finishStream,
  historyToDisplay,
  indexAfterLastUser,
  upsertToolCall,
  userMessage,
} from '@/lib/messages.js'
import { isAbnormalEnd, isTerminal, RUNNING_STATES } from '@/lib/executionStates.js'
import { useSocketStore } from './socket.js'
import { useToastStore } from './toasts.js'
import { useSessionsStore } from './sessions.js'
import { useTasksStore } from './tasks.js'

function newConversation(sessionId) {
  return {
    sessionId,
    status: 'idle', // idle | loading | ready | error
    error: '',
    messages: [],
    running: false, // a run of this chat is going (known from its events)
    awaitingStart: false, // a message was sent, its run has not started yet
    executionId: null,
    executionState: null,
    queuePosition: null,
    finishedIds: new Set(),
    loadPromise: null,
  }
}

export const useChatStore = defineStore('chat', () => {
  const conversations = reactive({})
  const finishedListeners = new Set()

  const socket = useSocketStore()

  function conversation(sessionId) {
    if (!conversations[sessionId]) conversations[sessionId] = newConversation(sessionId)
    return conversations[sessionId]
  }

  function onRunFinished(fn) {
    finishedListeners.add(fn)
    return () => finishedListeners.delete(fn)
  }

  function announceFinished(c, executionId, state, error) {
    if (!executionId || c.finishedIds.has(executionId)) return
    c.finishedIds.add(executionId)
    for (const fn of finishedListeners) fn({ sessionId: c.sessionId, executionId, state, error: error || null })
  }

  /** Shows a chat: loads its history once and subscribes; later visits reuse what is kept. */
  function open(sessionId) {
    const c = conversation(sessionId)
    if (c.status === 'loading') return c.loadPromise
    if (c.status === 'ready' && socket.isSubscribed(sessionId)) return Promise.resolve()
    return load(sessionId, null)
  }

  /**
   * (Re)loads the history over HTTP, then subscribes: after afterSeq (a resync's seq), else
   * after the history's own resume point, else without after_seq (the server then replays
   * the running execution, and the events it repeats from the history are recognised).
   */
  function load(sessionId, afterSeq = null) {
    const c = conversation(sessionId)
    c.status = 'loading'
    c.loadPromise = (async () => {
      let records = []
      let resumeAfter = afterSeq
      try {
        // A chat made here that has no message yet has nothing on the server to load.
        const draft = useSessionsStore().drafts.find((d) => d.session_id === sessionId)
        if (draft && !draft.message_count && afterSeq === null) throw new ApiError(404, 'new chat')
        const data = await api.getSession(sessionId)
        records = Array.isArray(data?.messages) ? data.messages : []
        // The server may say where its live events pick up from this history (just before
        // a running execution's first event): resuming there leaves no gap and no overlap.
        if (resumeAfter === null && typeof data?.last_seq === 'number' && data.last_seq > 0) resumeAfter = data.last_seq
      } catch (err) {
        if (!(err instanceof ApiError && err.status === 404)) {
          c.status = 'error'
          c.error = err.message
          return
        }
      }
      const pending = c.messages.filter((m) => m.pending)
      c.messages = [...historyToDisplay(records), ...pending]
      c.running = false
      c.executionId = null
      c.error = ''
      c.status = 'ready'
      socket.subscribe(sessionId, resumeAfter)
      explainStoredEnds(c)
    })()
    return c.loadPromise
  }

  /**
   * Stored replies keep their end state but not why; the execution records say why
   * (the model's error, the exit status). Fills that in for replies that did not complete.
   */
  async function explainStoredEnds(c) {
    const unexplained = c.messages.filter((m) => m.fromHistory && m.executionId && isAbnormalEnd(m.state) && !m.error)
    if (!unexplained.length) return
    try {
      const data = await api.executions({ session_id: c.sessionId, limit: 200 })
      const byId = new Map((data?.executions || []).map((e) => [e.id, e]))
      for (const m of unexplained) {
        const rec = byId.get(m.executionId)
        if (rec?.error && rec.error !== m.state) m.error = rec.error
        else if (rec?.signal) m.error = `Ended by signal ${rec.signal}`
        else if (rec?.exit_code !== null && rec?.exit_code !== undefined && rec.exit_code !== 0) m.error = `Exited with status ${rec.exit_code}`
      }
    } catch {
      /* the state alone is still shown */
    }
  }

  function findLive(c, executionId) {
    for (let i = c.messages.length - 1; i >= 0; i -= 1) {
      const m = c.messages[i]
      if (m.role === 'assistant' && !m.fromHistory && m.executionId === executionId) return m
    }
    return null
  }

  function ensureLive(c, ev) {
    let live = findLive(c, ev.execution_id)
    if (live) return live
    // The history may hold what this run already stored (tool calls, or all of it when the
    // run ended just before the replay): the replay rebuilds it, so drop the stored copy.
    const stored = (m) => m.fromHistory && m.role === 'assistant'
    if (ev.execution_id && c.messages.some((m) => stored(m) && m.executionId === ev.execution_id)) {
      c.messages = c.messages.filter((m) => !(stored(m) && m.executionId === ev.execution_id))
    } else {
      const start = indexAfterLastUser(c.messages)
      const trailing = c.messages.slice(start)
      if (trailing.length && trailing.every((m) => stored(m) && !m.executionId)) c.messages.splice(start)
    }
    live = assistantMessage({ executionId: ev.execution_id ?? null, streaming: true })
    live.seq = ev.seq ?? null
    c.messages.push(live)
    return live
  }

  function markRunning(c, executionId) {
    c.running = true
    c.awaitingStart = false
    if (executionId) c.executionId = executionId
  }

  function handleUserEcho(c, ev) {
    const text = ev.content ?? ''
    const pending = c.messages.find((m) => m.pending && m.text === text)
    if (pending) {
      pending.pending = false
      pending.seq = ev.seq ?? null
      return
    }
    // A replay may start with the echo of a message the history already holds.
    const idx = indexAfterLastUser(c.messages) - 1
    const lastUser = idx >= 0 ? c.messages[idx] : null
    // (A reply after it settles that it was answered, unless that reply is this same run's.)
    const closedAfter = c.messages
      .slice(idx + 1)
      .some((m) => m.role === 'assistant' && (m.closed || !m.fromHistory) && !(ev.execution_id && m.executionId === ev.execution_id))
    if (lastUser && lastUser.fromHistory && lastUser.text === text && !closedAfter && lastUser.seq == null) {
      lastUser.seq = ev.seq ?? null
      return
    }
    c.messages.push(userMessage({ text, seq: ev.seq ?? null }))
  }

  /** Applies one (already deduplicated) socket event. */
  function handleEvent(ev) {
    const sessionId = ev.session_id
    if (!sessionId) {
      if (ev.type === 'error') useToastStore().error(ev.message || ev.code || 'Error')
      return
    }
    const c = conversation(sessionId)
    if (ev.type === 'resync') {
      load(sessionId, typeof ev.seq === 'number' ? ev.seq : null)
      return
    }
    if (c.status === 'loading') return // the subscribe after the load brings these again

    switch (ev.type) {
      case 'message':
        if (ev.role === 'user') handleUserEcho(c, ev)
        else if (ev.role === 'assistant' && ev.content && !findLive(c, ev.execution_id)) {
          const m = assistantMessage({ executionId: ev.execution_id ?? null })
          appendText(m, ev.content)
          m.state = 'completed'
          c.messages.push(m)
        }
        break
      case 'stream_start':
        markRunning(c, ev.execution_id)
        ensureLive(c, ev)
        useTasksStore().refreshActive()
        break
      case 'stream':
        markRunning(c, ev.execution_id)
        appendText(ensureLive(c, ev), ev.content ?? '')
        break
      case 'tool_call':
        markRunning(c, ev.execution_id)
        upsertToolCall(ensureLive(c, ev), ev)
        break
      case 'tool_output':
        markRunning(c, ev.execution_id)
        appendToolOutput(ensureLive(c, ev), ev)
        break
      case 'stream_end': {
        const live = ensureLive(c, ev)
        finishStream(live, ev)
        c.running = false
        c.awaitingStart = false
        announceFinished(c, ev.execution_id, live.state, live.error)
        useSessionsStore().refreshSoon()
        useTasksStore().refreshActive()
        break
      }
      case 'ready':
        c.running = false
        c.awaitingStart = false
        break
      case 'execution':
        c.executionState = ev.state || null
        c.queuePosition = ev.state === 'queued' && typeof ev.position === 'number' ? ev.position : null
        if (RUNNING_STATES.has(ev.state)) {
          markRunning(c, ev.execution_id)
        } else if (isTerminal(ev.state)) {
          c.running = false
          c.awaitingStart = false
          const live = findLive(c, ev.execution_id)
          if (live) {
            if (live.streaming) finishStream(live, { state: ev.state, error: ev.error || (ev.state === 'completed' ? null : describeEnd(ev)) })
            else if (live.state !== ev.state) live.state = ev.state
          }
          announceFinished(c, ev.execution_id, ev.state, live?.error)
          useSessionsStore().refreshSoon()
        }
        break
      case 'error': {
        c.awaitingStart = false
        if (ev.code === 'session_busy') {
          const idx = c.messages.findLastIndex((m) => m.pending)
          if (idx >= 0) c.messages.splice(idx, 1)
          useToastStore().error('A reply is still running in this chat. Wait for it or cancel it.')
        } else {
          useToastStore().error(ev.message || ev.code || 'The server reported an error')
        }
        break
      }
      default:
        break
    }
  }

  function describeEnd(ev) {
    if (ev.signal) return `Ended by signal ${ev.signal}`
    if (ev.exit_code !== undefined && ev.exit_code !== null) return `Exited with status ${ev.exit_code}`
    return null
  }

  /** Sends a message; the server's echo confirms it. Returns false when it could not be sent. */
  function send(sessionId, text) {
    const content = text.trim()
    if (!content) return false
    const c = conversation(sessionId)
    if (!socket.isSubscribed(sessionId)) socket.subscribe(sessionId, null)
    const sent = socket.send({ type: 'message', session_id: sessionId, content })
    if (!sent) {
      useToastStore().error('Not connected to the server. Your message was not sent.')
      return false
    }
    c.messages.push(userMessage({ text: content, pending: true }))
    c.awaitingStart = true
    useSessionsStore().markUsed(sessionId, content)
    return true
  }

  /** The cancel button and Esc: cancel this chat's run over HTTP, and say what happened. */
  async function cancel(sessionId) {
    const toasts = useToastStore()
    try {
      const res = await api.cancel({ session_id: sessionId })
      const n = Number(res?.canceled ?? 0)
      if (n > 0) toasts.success(res?.message || `Canceled ${n} execution(s)`)
      else toasts.info(res?.message || 'Nothing was running in this chat.')
      useTasksStore().refreshActive()
      return res
    } catch (err) {
      toasts.error(`Cancel failed: ${err.message}`)
      return null
    }
  }

  function isRunning(sessionId) {
    const c = conversations[sessionId]
    if (c && (c.running || c.awaitingStart)) return true
    const tasks = useTasksStore()
    return tasks.active.some((e) => e.session_id === sessionId && !(c && c.finishedIds.has(e.id)))
  }

  function forget(sessionId) {
    delete conversations[sessionId]
    socket.forget(sessionId)
  }

  function reset() {
    for (const key of Object.keys(conversations)) delete conversations[key]
  }

  return { conversations, conversation, open, load, handleEvent, send, cancel, isRunning, onRunFinished, forget, reset }
})
