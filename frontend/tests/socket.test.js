import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { createPinia, setActivePinia } from 'pinia'
import { useSocketStore } from '@/stores/socket.js'
import { backoffDelay } from '@/lib/backoff.js'
import { FakeWebSocket, envelope } from './helpers.js'

function setup(extra = {}) {
  const socket = useSocketStore()
  socket.configure({
    createSocket: (url) => new FakeWebSocket(url),
    buildUrl: (token) => `ws://test/ws/chat?token=${token}`,
    backoff: { base: 100, factor: 2, max: 1000, jitter: 0 },
    ...extra,
  })
  const events = []
  socket.onEvent((ev) => events.push(ev))
  return { socket, events }
}

describe('socket store', () => {
  beforeEach(() => {
    setActivePinia(createPinia())
    FakeWebSocket.reset()
    vi.useFakeTimers()
  })
  afterEach(() => {
    vi.useRealTimers()
  })

  it('connects with the token in the query string and subscribes on open', () => {
    const { socket } = setup()
    socket.subscribe('web:chat:a')
    socket.connect('tok 1')
    const ws = FakeWebSocket.last()
    expect(ws.url).toBe('ws://test/ws/chat?token=tok 1')
    expect(socket.status).toBe('connecting')
    ws.serverOpen()
    expect(socket.status).toBe('open')
    expect(ws.sentOfType('subscribe')).toEqual([{ type: 'subscribe', session_id: 'web:chat:a' }])
  })

  it('drops events whose seq was already applied', () => {
    const { socket, events } = setup()
    socket.connect('t')
    FakeWebSocket.last().serverOpen()
    socket.subscribe('web:chat:a', 0)
    const ws = FakeWebSocket.last()
    ws.serverSend(envelope('stream_start', 1))
    ws.serverSend(envelope('stream', 2, { content: 'a' }))
    ws.serverSend(envelope('stream', 2, { content: 'a' }))
    ws.serverSend(envelope('stream', 1, { content: 'old' }))
    ws.serverSend(envelope('stream', 3, { content: 'b' }))
    expect(events.map((e) => e.seq)).toEqual([1, 2, 3])
    expect(socket.getLastSeq('web:chat:a')).toBe(3)
  })

  it('keeps a separate sequence per session', () => {
    const { socket, events } = setup()
    socket.connect('t')
    FakeWebSocket.last().serverOpen()
    socket.subscribe('web:chat:a', 0)
    socket.subscribe('web:chat:b', 0)
    const ws = FakeWebSocket.last()
    ws.serverSend(envelope('stream_start', 5, {}, 'web:chat:a'))
    ws.serverSend(envelope('stream_start', 1, {}, 'web:chat:b'))
    ws.serverSend(envelope('stream', 2, { content: 'x' }, 'web:chat:b'))
    expect(events.map((e) => `${e.session_id}#${e.seq}`)).toEqual(['web:chat:a#5', 'web:chat:b#1', 'web:chat:b#2'])
  })

  it('after a fresh subscribe, skips stale mid-run events until the replay starts', () => {
    const { socket, events } = setup()
    socket.connect('t')
    FakeWebSocket.last().serverOpen()
    const ws = FakeWebSocket.last()
    socket.subscribe('web:chat:a', null)
    // in flight from before the subscribe
    ws.serverSend(envelope('stream', 50, { content: 'late' }))
    // the replay from stream_start
    ws.serverSend(envelope('stream_start', 10))
    ws.serverSend(envelope('stream', 11, { content: 'a' }))
    ws.serverSend(envelope('stream', 50, { content: 'late' }))
    expect(events.map((e) => e.seq)).toEqual([10, 11, 50])
  })

  it('passes resync through whatever its seq, and non-JSON and pongs are ignored', () => {
    const { socket, events } = setup()
    socket.connect('t')
    const ws = FakeWebSocket.last()
    ws.serverOpen()
    socket.subscribe('web:chat:a', 9)
    ws.serverSend('not json')
    ws.serverSend({ type: 'pong' })
    ws.serverSend(envelope('resync', 3))
    expect(events.map((e) => e.type)).toEqual(['resync'])
  })

  it('reconnects with growing delays and resumes every session with after_seq', () => {
    const { socket } = setup()
    socket.connect('t')
    let ws = FakeWebSocket.last()
    ws.serverOpen()
    socket.subscribe('web:chat:a', 0)
    ws.serverSend(envelope('stream_start', 1))
    ws.serverSend(envelope('stream', 2, { content: 'x' }))

    ws.serverClose(1006)
    expect(socket.status).toBe('reconnecting')
    expect(FakeWebSocket.instances).toHaveLength(1)
    vi.advanceTimersByTime(99)
    expect(FakeWebSocket.instances).toHaveLength(1)
    vi.advanceTimersByTime(1)
    expect(FakeWebSocket.instances).toHaveLength(2)

    // The second try fails too: the next wait is twice as long.
    FakeWebSocket.last().serverClose(1006)
    vi.advanceTimersByTime(199)
    expect(FakeWebSocket.instances).toHaveLength(2)
    vi.advanceTimersByTime(1)
    expect(FakeWebSocket.instances).toHaveLength(3)

    ws = FakeWebSocket.last()
    ws.serverOpen()
    expect(socket.status).toBe('open')
    expect(socket.attempt).toBe(0)
    expect(ws.sentOfType('subscribe')).toEqual([{ type: 'subscribe', session_id: 'web:chat:a', after_seq: 2 }])
  })

  it('shows the indicator only once it had been connected', () => {
    const { socket } = setup()
    socket.connect('t')
    expect(socket.showIndicator).toBe(false)
    FakeWebSocket.last().serverOpen()
    FakeWebSocket.last().serverClose()
    expect(socket.showIndicator).toBe(true)
  })

  it('asks whether the token still works after failed opens, and stops when it does not', async () => {
    const checkAuth = vi.fn(async () => false)
    const { socket } = setup({ checkAuth })
    socket.connect('t')
    FakeWebSocket.last().serverClose(1006)
    vi.advanceTimersByTime(100)
    FakeWebSocket.last().serverClose(1006)
    await vi.runAllTicks()
    await Promise.resolve()
    expect(checkAuth).toHaveBeenCalledTimes(1)
    expect(socket.status).toBe('idle')
    vi.advanceTimersByTime(60_000)
    expect(FakeWebSocket.instances).toHaveLength(2)
  })

  it('a policy close checks auth at once; a valid token keeps reconnecting', async () => {
    const checkAuth = vi.fn(async () => true)
    const { socket } = setup({ checkAuth })
    socket.connect('t')
    FakeWebSocket.last().serverOpen()
    FakeWebSocket.last().serverClose(1008)
    await Promise.resolve()
    await Promise.resolve()
    expect(checkAuth).toHaveBeenCalledTimes(1)
    expect(socket.status).toBe('reconnecting')
  })

  it('pings and treats a silent connection as dead', () => {
    const { socket } = setup({ pingIntervalMs: 1000, silenceLimitMs: 2500 })
    socket.connect('t')
    const ws = FakeWebSocket.last()
    ws.serverOpen()
    vi.advanceTimersByTime(1000)
    expect(ws.sentOfType('ping')).toHaveLength(1)
    vi.advanceTimersByTime(2000)
    expect(ws.closed).toBe(true)
    expect(socket.status).toBe('reconnecting')
  })

  it('disconnect stops reconnecting and forgets sequences', () => {
    const { socket } = setup()
    socket.connect('t')
    FakeWebSocket.last().serverOpen()
    socket.subscribe('web:chat:a', 4)
    FakeWebSocket.last().serverClose()
    socket.disconnect()
    vi.advanceTimersByTime(10_000)
    expect(FakeWebSocket.instances).toHaveLength(1)
    expect(socket.status).toBe('idle')
    expect(socket.getLastSeq('web:chat:a')).toBe(0)
    expect(socket.isSubscribed('web:chat:a')).toBe(false)
  })

  it('send refuses while not connected', () => {
    const { socket } = setup()
    expect(socket.send({ type: 'ping' })).toBe(false)
    socket.connect('t')
    expect(socket.send({ type: 'ping' })).toBe(false)
    FakeWebSocket.last().serverOpen()
    expect(socket.send({ type: 'message', session_id: 's', content: 'hi' })).toBe(true)
    expect(FakeWebSocket.last().sentOfType('message')).toHaveLength(1)
  })
})

describe('backoffDelay', () => {
  it('doubles up to the cap', () => {
    const opts = { base: 500, factor: 2, max: 15000, jitter: 0 }
    expect([0, 1, 2, 3, 4, 5, 6, 10].map((a) => backoffDelay(a, opts))).toEqual([500, 1000, 2000, 4000, 8000, 15000, 15000, 15000])
  })

  it('spreads by the jitter fraction and never exceeds the cap', () => {
    const low = backoffDelay(2, { base: 500, jitter: 0.2, random: () => 0 })
    const high = backoffDelay(2, { base: 500, jitter: 0.2, random: () => 1 })
    expect(low).toBe(1600)
    expect(high).toBe(2400)
    expect(backoffDelay(20, { max: 15000, jitter: 0.5, random: () => 1 })).toBe(15000)
  })
})
