import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { createPinia, setActivePinia } from 'pinia'
import { useTasksStore } from '@/stores/tasks.js'
import { installFakeApi } from './helpers.js'

describe('tasks store', () => {
  let active
  let fake
  beforeEach(() => {
    setActivePinia(createPinia())
    active = []
    fake = installFakeApi({
      'GET /api/v1/chat/active': () => [200, active],
      'POST /api/v1/chat/cancel': ({ body }) => [200, { canceled: 1, message: 'Canceled 1 execution(s)', executions: [], echo: body }],
      'GET /api/v1/executions': ({ query }) => [200, { executions: [{ id: 'x', state: 'completed' }], total: 41, query }],
    })
  })
  afterEach(() => vi.useRealTimers())

  it('counts running executions and reports the ones that finished', async () => {
    const tasks = useTasksStore()
    const finished = []
    tasks.onFinished((e) => finished.push(e.id))
    active = [{ id: 'a', session_id: 's1' }, { id: 'b', session_id: 's2' }]
    await tasks.refreshActive()
    expect(tasks.runningCount).toBe(2)
    expect([...tasks.runningSessionIds]).toEqual(['s1', 's2'])
    expect(finished).toEqual([]) // the first poll reports nothing as finished
    active = [{ id: 'b', session_id: 's2' }]
    await tasks.refreshActive()
    expect(finished).toEqual(['a'])
    expect(tasks.runningCount).toBe(1)
  })

  it('polls on its interval, faster while a live view holds it', async () => {
    vi.useFakeTimers()
    const tasks = useTasksStore()
    await tasks.startPolling(2000)
    const polls = () => fake.calls.filter((c) => c.path === '/api/v1/chat/active').length
    expect(polls()).toBe(1)
    await vi.advanceTimersByTimeAsync(2000)
    expect(polls()).toBe(2)
    const release = tasks.holdFastPolling('view')
    await vi.advanceTimersByTimeAsync(3000)
    expect(polls()).toBe(5)
    release()
    await vi.advanceTimersByTimeAsync(2000)
    expect(polls()).toBe(6)
    tasks.setPageHidden(true)
    await vi.advanceTimersByTimeAsync(9999)
    expect(polls()).toBe(6)
    await vi.advanceTimersByTimeAsync(1)
    expect(polls()).toBe(7)
    tasks.setPageHidden(false) // back: polls at once, then on the usual interval
    await vi.advanceTimersByTimeAsync(0)
    expect(polls()).toBe(8)
    tasks.stopPolling()
    await vi.advanceTimersByTimeAsync(10000)
    expect(polls()).toBe(8)
  })

  it('cancels one, force-kills one, and cancels all with the right bodies', async () => {
    const tasks = useTasksStore()
    await tasks.cancelExecution('e1')
    await tasks.cancelExecution('e2', { force: true })
    await tasks.cancelAll()
    const bodies = fake.calls.filter((c) => c.path === '/api/v1/chat/cancel').map((c) => c.body)
    expect(bodies).toEqual([{ execution_id: 'e1' }, { execution_id: 'e2', force: true }, { all: true }])
  })

  it('loads a page of history with its filters', async () => {
    const tasks = useTasksStore()
    await tasks.refreshHistory({ state: 'canceled', offset: 20 })
    const call = fake.calls.find((c) => c.path === '/api/v1/executions')
    expect(call.query).toEqual({ limit: '20', offset: '20', state: 'canceled' })
    expect(tasks.history).toHaveLength(1)
    expect(tasks.historyTotal).toBe(41)
  })
})
