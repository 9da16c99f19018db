import { describe, expect, it } from 'vitest'
import { historyToDisplay, messageText, finishStream, assistantMessage, appendText, appendToolOutput } from '@/lib/messages.js'
import { buildProcessTree, countProcesses } from '@/lib/processTree.js'
import { formatBytes, formatDuration, parseDurationField } from '@/lib/format.js'
import { renderMarkdown } from '@/composables/useMarkdown.js'

describe('historyToDisplay', () => {
  it('joins a run (tool calls, results, final text) into one assistant message', () => {
    const out = historyToDisplay([
      { id: 1, role: 'user', content: '/shell ls' },
      { id: 2, role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'exec', arguments: '{"command":"ls"}' } }] },
      { id: 3, role: 'tool', tool_call_id: 'c1', name: 'exec', content: 'a\nb' },
      { id: 4, role: 'assistant', content: 'Tool result: a b', state: 'completed' },
      { id: 5, role: 'user', content: 'next' },
      { id: 6, role: 'assistant', content: 'partial', state: 'canceled' },
    ])
    expect(out.map((m) => m.role)).toEqual(['user', 'assistant', 'user', 'assistant'])
    expect(out[1].parts[0]).toMatchObject({ kind: 'tool', callId: 'c1', name: 'exec', args: { command: 'ls' }, result: 'a\nb', status: 'finished' })
    expect(messageText(out[1])).toBe('Tool result: a b')
    expect(out[3].state).toBe('canceled')
  })
})

describe('stream assembly', () => {
  it('keeps text around tool cards in order and trims huge tool output', () => {
    const m = assistantMessage()
    appendText(m, 'before ')
    appendToolOutput(m, { call_id: 'c', stream: 'stdout', data: 'x'.repeat(150_000) })
    appendToolOutput(m, { call_id: 'c', stream: 'stderr', data: 'y'.repeat(100_000) })
    appendText(m, 'after')
    expect(m.parts.map((p) => p.kind)).toEqual(['text', 'tool', 'text'])
    const card = m.parts[1]
    expect(card.outputChars).toBe(200_000)
    expect(card.truncated).toBe(true)
    expect(card.output.at(-1)).toEqual({ stream: 'stderr', data: 'y'.repeat(100_000) })
    finishStream(m, { content: 'final', state: 'completed' })
    expect(m.parts.map((p) => (p.kind === 'text' ? p.text : 'T'))).toEqual(['before ', 'T', 'final'])
  })
})

describe('process tree', () => {
  it('nests children under parents, the runner first', () => {
    const tree = buildProcessTree(
      [
        { pid: 30, ppid: 20, name: 'sleep' },
        { pid: 10, ppid: 1, name: 'python' },
        { pid: 20, ppid: 10, name: 'sh' },
        { pid: 40, ppid: 999, name: 'orphan' },
      ],
      10,
    )
    expect(tree.map((n) => n.name)).toEqual(['python', 'orphan'])
    expect(tree[0].children[0].name).toBe('sh')
    expect(tree[0].children[0].children[0].name).toBe('sleep')
    expect(countProcesses(tree)).toBe(4)
  })
})

describe('format', () => {
  it('formats durations, sizes, and Go-style duration strings', () => {
    expect(formatDuration(3.21)).toBe('3.2 s')
    expect(formatDuration(75)).toBe('1 m 15 s')
    expect(formatDuration(3700)).toBe('1 h 01 m')
    expect(formatBytes(512)).toBe('512 B')
    expect(formatBytes(10 * 1024 * 1024)).toBe('10 MiB')
    expect(parseDurationField('1m2.5s')).toBe(62.5)
    expect(parseDurationField(4)).toBe(4)
    expect(parseDurationField('nonsense')).toBe(null)
  })
})

describe('renderMarkdown', () => {
  it('renders Markdown and strips anything executable', () => {
    const html = renderMarkdown('**bold** <img src=x onerror="alert(1)"> <script>alert(2)</script> [a](javascript:alert(3)) [b](https://example.org)')
    expect(html).toContain('<strong>bold</strong>')
    expect(html).not.toMatch(/onerror|<script|javascript:/i)
    expect(html).toContain('target="_blank"')
    expect(html).toContain('rel="noopener noreferrer"')
  })
})
