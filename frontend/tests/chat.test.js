import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { createPinia, setActivePinia } from 'pinia'
import { useChatStore } from '@/stores/chat.js'
import { useSocketStore } from '@/stores/socket.js'
import { useToastStore } from '@/stores/toasts.js'
import { useTasksStore } from '@/stores/tasks.js'
import { messageText } from '@/lib/messages.js'
import { FakeWebSocket, envelope, installFakeApi } from './helpers.js'

const SID = 'web:chat:a'

function flush() {
  return new Promise((r) => setTimeout(r, 0))
}

async function setup(history = [], extraRoutes = {}) {
  const state = { history }
  const api = installFakeApi({
    [`GET /api/v1/chat/sessions/${encodeURIComponent(SID)}`]: () => [200, { messages: state.history }],
    'GET /api/v1/chat/sessions': () => [200, { sessions: [] }],
    'GET /api/v1/chat/active': () => [200, []],
    ...extraRoutes,
  })
  const socket = useSocketStore()
  socket.configure({ createSocket: (url) => new FakeWebSocket(url), buildUrl: () => 'ws://test', backoff: { base: 10, jitter: 0 } })
  const chat = useChatStore()
  socket.onEvent((ev) => chat.handleEvent(ev))
  socket.connect('tok')
  const ws = FakeWebSocket.last()
  ws.serverOpen()
  return { api, socket, chat, ws, state }
}

const conv = (chat) => chat.conversation(SID)
const assistantTexts = (chat) => conv(chat).messages.filter((m) => m.role === 'assistant').map(messageText)

describe('chat store', () => {
  beforeEach(() => {
    setActivePinia(createPinia())
    FakeWebSocket.reset()
  })
  afterEach(() => vi.useRealTimers())

  it('loads history over HTTP, then subscribes without after_seq', async () => {
    const { chat, ws, api } = await setup([
      { id: 1, session_id: SID, role: 'user', content: 'hi', created_at: 't' },
      { id: 2, session_id: SID, role: 'assistant', content: 'hello', created_at: 't', state: 'completed' },
    ])
    await chat.open(SID)
    expect(api.calls.some((c) => c.path === `/api/v1/chat/sessions/${encodeURIComponent(SID)}`)).toBe(true)
    expect(conv(chat).messages.map((m) => m.role)).toEqual(['user', 'assistant'])
    expect(ws.sentOfType('subscribe')).toEqual([{ type: 'subscribe', session_id: SID }])
    // A second visit reuses what is kept: no new request, no new subscribe.
    const before = api.calls.length
    await chat.open(SID)
    expect(api.calls.length).toBe(before)
    expect(ws.sentOfType('subscribe')).toHaveLength(1)
  })

  it('builds a streamed reply with a tool card and live output', async () => {
    const { chat, ws } = await setup()
    await chat.open(SID)
    expect(chat.send(SID, '  /shell echo hi  ')).toBe(true)
    expect(ws.sentOfType('message')).toEqual([{ type: 'message', session_id: SID, content: '/shell echo hi' }])
    expect(conv(chat).messages[0]).toMatchObject({ role: 'user', pending: true })
    expect(chat.isRunning(SID)).toBe(true)

    ws.serverSend(envelope('message', 1, { role: 'user', content: '/shell echo hi' }, SID))
    ws.serverSend(envelope('stream_start', 2, {}, SID))
    ws.serverSend(envelope('tool_call', 3, { call_id: 'c1', name: 'exec', args: { command: 'echo hi' }, status: 'started' }, SID))
    ws.serverSend(envelope('tool_output', 4, { call_id: 'c1', stream: 'stdout', data: 'h' }, SID))
    ws.serverSend(envelope('tool_output', 5, { call_id: 'c1', stream: 'stdout', data: 'i\n' }, SID))
    ws.serverSend(envelope('tool_call', 6, { call_id: 'c1', name: 'exec', result: 'hi\n', status: 'finished' }, SID))
    ws.serverSend(envelope('stream', 7, { content: 'Tool result: ' }, SID))
    ws.serverSend(envelope('stream', 8, { content: 'hi' }, SID))

    const msgs = conv(chat).messages
    expect(msgs).toHaveLength(2)
    expect(msgs[0].pending).toBe(false)
    const reply = msgs[1]
    expect(reply.streaming).toBe(true)
    expect(reply.parts[0]).toMatchObject({ kind: 'tool', callId: 'c1', name: 'exec', status: 'finished', result: 'hi\n' })
    expect(reply.parts[0].output).toEqual([{ stream: 'stdout', data: 'hi\n' }])
    expect(messageText(reply)).toBe('Tool result: hi')

    ws.serverSend(envelope('stream_end', 9, { content: 'Tool result: hi', state: 'completed' }, SID))
    ws.serverSend(envelope('ready', 10, {}, SID))
    expect(reply.streaming).toBe(false)
    expect(reply.state).toBe('completed')
    expect(chat.isRunning(SID)).toBe(false)
  })

  it('shows the final text when it differs from the deltas (flood)', async () => {
    const { chat, ws } = await setup()
    await chat.open(SID)
    ws.serverSend(envelope('message', 1, { role: 'user', content: '/flood 3' }, SID))
    ws.serverSend(envelope('stream_start', 2, {}, SID))
    for (let i = 0; i < 3; i += 1) ws.serverSend(envelope('stream', 3 + i, { content: `x${i} ` }, SID))
    ws.serverSend(envelope('stream_end', 6, { content: 'Flooded 3 deltas.', state: 'completed' }, SID))
    expect(assistantTexts(chat)).toEqual(['Flooded 3 deltas.'])
  })

  it('marks a canceled reply, keeps its partial text, and closes running tools', async () => {
    const { chat, ws } = await setup()
    await chat.open(SID)
    ws.serverSend(envelope('message', 1, { role: 'user', content: '/shell sleep 30' }, SID))
    ws.serverSend(envelope('stream_start', 2, {}, SID))
    ws.serverSend(envelope('tool_call', 3, { call_id: 'c1', name: 'exec', args: { command: 'sleep 30' }, status: 'started' }, SID))
    ws.serverSend(envelope('stream_end', 4, { content: '', error: 'Execution canceled by user', canceled: true, state: 'canceled' }, SID))
    ws.serverSend(envelope('execution', 5, { state: 'canceled', signal: 'SIGTERM' }, SID))
    const reply = conv(chat).messages[1]
    expect(reply.state).toBe('canceled')
    expect(reply.error).toBe('Execution canceled by user')
    expect(reply.parts[0].status).toBe('stopped')
    expect(chat.isRunning(SID)).toBe(false)
  })

  it('a later execution event sharpens the state (killed, not canceled)', async () => {
    const { chat, ws } = await setup()
    await chat.open(SID)
    ws.serverSend(envelope('stream_start', 1, {}, SID))
    ws.serverSend(envelope('stream_end', 2, { content: 'part', canceled: true, error: 'Execution canceled by user' }, SID))
    ws.serverSend(envelope('execution', 3, { state: 'killed', signal: 'SIGKILL' }, SID))
    expect(conv(chat).messages[0].state).toBe('killed')
  })

  it('keeps the queue position of a waiting run', async () => {
    const { chat, ws } = await setup()
    await chat.open(SID)
    ws.serverSend(envelope('message', 1, { role: 'user', content: 'hi' }, SID))
    ws.serverSend(envelope('execution', 2, { state: 'queued', position: 3 }, SID))
    expect(conv(chat)).toMatchObject({ running: true, executionState: 'queued', queuePosition: 3 })
    ws.serverSend(envelope('stream_start', 3, {}, SID))
    ws.serverSend(envelope('execution', 4, { state: 'running', pid: 7 }, SID))
    expect(conv(chat)).toMatchObject({ executionState: 'running', queuePosition: null })
  })

  it('ends a run that stops without stream_end (crash) from the execution event', async () => {
    const { chat, ws } = await setup()
    await chat.open(SID)
    ws.serverSend(envelope('execution', 1, { state: 'running', pid: 42 }, SID))
    ws.serverSend(envelope('stream_start', 2, {}, SID))
    ws.serverSend(envelope('execution', 3, { state: 'failed', exit_code: 3 }, SID))
    const reply = conv(chat).messages[0]
    expect(reply.streaming).toBe(false)
    expect(reply.state).toBe('failed')
    expect(reply.error).toBe('Exited with status 3')
  })

  it('reload mid-stream: history plus the replay gives each chunk once', async () => {
    // The history holds the user message and the tool call the run already stored.
    const { chat, ws } = await setup([
      { id: 1, session_id: SID, role: 'user', content: '/sleep 6', created_at: 't' },
      {
        id: 2,
        session_id: SID,
        role: 'assistant',
        content: '',
        tool_calls: [{ id: 'c1', type: 'function', function: { name: 'exec', arguments: '{"command":"x"}' } }],
      },
    ])
    await chat.open(SID)
    expect(ws.sentOfType('subscribe')).toEqual([{ type: 'subscribe', session_id: SID }])
    // The server replays the running execution from its start (echo included here), then goes live.
    ws.serverSend(envelope('message', 4, { role: 'user', content: '/sleep 6' }, SID))
    ws.serverSend(envelope('stream_start', 5, {}, SID))
    ws.serverSend(envelope('stream', 6, { content: 'tick 1 ' }, SID))
    ws.serverSend(envelope('stream', 7, { content: 'tick 2 ' }, SID))
    ws.serverSend(envelope('stream', 7, { content: 'tick 2 ' }, SID)) // a duplicate delivery
    ws.serverSend(envelope('stream', 8, { content: 'tick 3 ' }, SID))
    ws.serverSend(envelope('stream_end', 9, { content: 'tick 1 tick 2 tick 3 Slept 3 s.', state: 'completed' }, SID))

    const msgs = conv(chat).messages
    expect(msgs.map((m) => m.role)).toEqual(['user', 'assistant'])
    expect(messageText(msgs[1])).toBe('tick 1 tick 2 tick 3 Slept 3 s.')
  })

  it('a replay drops the stored copy of its own run (matched by execution id)', async () => {
    const { chat, ws } = await setup([
      { id: 1, role: 'user', content: 'first' },
      { id: 2, role: 'assistant', content: 'reply one', state: 'completed', execution_id: 'e0' },
      { id: 3, role: 'user', content: '/shell ls' },
      { id: 4, role: 'assistant', content: '', execution_id: 'e1', tool_calls: [{ id: 'c1', type: 'function', function: { name: 'exec', arguments: '{}' } }] },
      { id: 5, role: 'tool', tool_call_id: 'c1', name: 'exec', content: 'a', execution_id: 'e1' },
      { id: 6, role: 'assistant', content: 'Tool result: a', state: 'completed', execution_id: 'e1' },
    ])
    await chat.open(SID)
    ws.serverSend(envelope('message', 1, { role: 'user', content: '/shell ls' }, SID, 'e1'))
    ws.serverSend(envelope('stream_start', 2, {}, SID, 'e1'))
    ws.serverSend(envelope('tool_call', 3, { call_id: 'c1', name: 'exec', args: {}, status: 'started' }, SID, 'e1'))
    ws.serverSend(envelope('tool_call', 4, { call_id: 'c1', name: 'exec', args: {}, result: 'a', status: 'finished' }, SID, 'e1'))
    ws.serverSend(envelope('stream', 5, { content: 'Tool result: a' }, SID, 'e1'))
    ws.serverSend(envelope('stream_end', 6, { content: 'Tool result: a', state: 'completed' }, SID, 'e1'))
    expect(conv(chat).messages.map((m) => m.role)).toEqual(['user', 'assistant', 'user', 'assistant'])
    expect(assistantTexts(chat)).toEqual(['reply one', 'Tool result: a'])
    expect(conv(chat).messages[3].parts.filter((p) => p.kind === 'tool')).toHaveLength(1)
  })

  it('resumes after the history\'s own resume point when the server gives one', async () => {
    const { chat, ws } = await setup([{ id: 1, role: 'user', content: '/sleep 6' }], {
      [`GET /api/v1/chat/sessions/${encodeURIComponent(SID)}`]: () => [200, { messages: [{ id: 1, role: 'user', content: '/sleep 6' }], last_seq: 1000 }],
    })
    await chat.open(SID)
    expect(ws.sentOfType('subscribe')).toEqual([{ type: 'subscribe', session_id: SID, after_seq: 1000 }])
    ws.serverSend({ type: 'subscribed', session_id: SID, seq: 1004 })
    ws.serverSend(envelope('message', 1001, { role: 'user', content: '/sleep 6' }, SID))
    ws.serverSend(envelope('stream_start', 1002, {}, SID))
    ws.serverSend(envelope('stream', 1003, { content: 'tick 1 ' }, SID))
    ws.serverSend(envelope('stream', 1004, { content: 'tick 2 ' }, SID))
    expect(conv(chat).messages.map((m) => m.role)).toEqual(['user', 'assistant'])
    expect(assistantTexts(chat)).toEqual(['tick 1 tick 2 '])
  })

  it('a dropped connection resumes with after_seq and misses nothing', async () => {
    vi.useFakeTimers()
    const { chat, socket, ws } = await setup()
    await chat.open(SID)
    ws.serverSend(envelope('stream_start', 1, {}, SID))
    ws.serverSend(envelope('stream', 2, { content: 'a' }, SID))
    ws.serverClose(1006)
    vi.advanceTimersByTime(50)
    const ws2 = FakeWebSocket.last()
    expect(ws2).not.toBe(ws)
    ws2.serverOpen()
    expect(ws2.sentOfType('subscribe')).toEqual([{ type: 'subscribe', session_id: SID, after_seq: 2 }])
    ws2.serverSend(envelope('stream', 2, { content: 'a' }, SID))
    ws2.serverSend(envelope('stream', 3, { content: 'b' }, SID))
    expect(assistantTexts(chat)).toEqual(['ab'])
    expect(socket.getLastSeq(SID)).toBe(3)
  })

  it('on resync reloads the history and subscribes after the given seq', async () => {
    const { chat, ws, state, api } = await setup([{ id: 1, role: 'user', content: 'one' }])
    await chat.open(SID)
    ws.serverSend(envelope('stream_start', 1, {}, SID))
    ws.serverSend(envelope('stream', 2, { content: 'partial' }, SID))
    state.history = [
      { id: 1, role: 'user', content: 'one' },
      { id: 2, role: 'assistant', content: 'complete reply', state: 'completed' },
    ]
    const gets = () => api.calls.filter((c) => c.method === 'GET' && c.path.startsWith('/api/v1/chat/sessions/')).length
    expect(gets()).toBe(1)
    ws.serverSend({ type: 'resync', session_id: SID, seq: 40 })
    await flush()
    expect(gets()).toBe(2)
    expect(assistantTexts(chat)).toEqual(['complete reply'])
    expect(ws.sentOfType('subscribe').at(-1)).toEqual({ type: 'subscribe', session_id: SID, after_seq: 40 })
    ws.serverSend(envelope('stream', 40, { content: 'old' }, SID))
    expect(assistantTexts(chat)).toEqual(['complete reply'])
  })

  it('on resync without seq subscribes afresh', async () => {
    const { chat, ws } = await setup()
    await chat.open(SID)
    ws.serverSend({ type: 'resync', session_id: SID })
    await flush()
    expect(ws.sentOfType('subscribe').at(-1)).toEqual({ type: 'subscribe', session_id: SID })
  })

  it('stored replies that did not complete get their reason from the execution records', async () => {
    const { chat, api } = await setup(
      [
        { id: 1, role: 'user', content: '/fail down' },
        { id: 2, role: 'assistant', content: '', state: 'failed', execution_id: 'e1' },
        { id: 3, role: 'user', content: '/crash' },
        { id: 4, role: 'assistant', content: '', state: 'failed', execution_id: 'e2' },
      ],
      {
        'GET /api/v1/executions': () => [200, { executions: [{ id: 'e1', state: 'failed', error: 'model error: down' }, { id: 'e2', state: 'failed', exit_code: 3 }], total: 2 }],
      },
    )
    await chat.open(SID)
    await flush()
    expect(api.calls.find((c) => c.path === '/api/v1/executions').query).toEqual({ session_id: SID, limit: '200' })
    const replies = conv(chat).messages.filter((m) => m.role === 'assistant')
    expect(replies.map((m) => m.error)).toEqual(['model error: down', 'Exited with status 3'])
  })

  it('session_busy removes the unsent message and says why', async () => {
    const { chat, ws } = await setup()
    await chat.open(SID)
    chat.send(SID, 'again')
    ws.serverSend({ type: 'error', session_id: SID, code: 'session_busy', message: 'busy' })
    expect(conv(chat).messages).toHaveLength(0)
    expect(useToastStore().items.at(-1)).toMatchObject({ kind: 'error' })
  })

  it('does not send while disconnected', async () => {
    const { chat, ws } = await setup()
    await chat.open(SID)
    ws.serverClose()
    expect(chat.send(SID, 'hello')).toBe(false)
    expect(conv(chat).messages).toHaveLength(0)
    expect(useToastStore().items.at(-1).text).toMatch(/not connected/i)
  })

  it('cancel posts the session id and toasts the server message', async () => {
    const { chat, api } = await setup([], {
      'POST /api/v1/chat/cancel': () => [200, { canceled: 1, message: 'Canceled 1 execution(s)', executions: [] }],
    })
    await chat.cancel(SID)
    expect(api.calls.find((c) => c.path === '/api/v1/chat/cancel').body).toEqual({ session_id: SID })
    expect(useToastStore().items.at(-1)).toMatchObject({ kind: 'success', text: 'Canceled 1 execution(s)' })
  })

  it('announces a finished run once, with its state', async () => {
    const { chat, ws } = await setup()
    await chat.open(SID)
    const seen = []
    chat.onRunFinished((e) => seen.push(e))
    ws.serverSend(envelope('stream_start', 1, {}, SID, 'e1'))
    ws.serverSend(envelope('stream_end', 2, { content: 'x', state: 'completed' }, SID, 'e1'))
    ws.serverSend(envelope('execution', 3, { state: 'completed', exit_code: 0 }, SID, 'e1'))
    expect(seen).toEqual([{ sessionId: SID, executionId: 'e1', state: 'completed', error: null }])
  })

  it('a run seen only by polling counts as running until its events say it ended', async () => {
    const { chat, ws } = await setup()
    await chat.open(SID)
    const tasks = useTasksStore()
    tasks.active = [{ id: 'e9', session_id: SID }]
    expect(chat.isRunning(SID)).toBe(true)
    ws.serverSend(envelope('stream_start', 1, {}, SID, 'e9'))
    ws.serverSend(envelope('stream_end', 2, { content: 'x', state: 'completed' }, SID, 'e9'))
    expect(chat.isRunning(SID)).toBe(false)
  })
})
