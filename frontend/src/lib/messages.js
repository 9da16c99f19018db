// The conversation as the app shows it: user messages, and one assistant message per run
// made of parts (text and tool-call cards). Pure functions, so the store stays thin.

const MAX_TOOL_OUTPUT_CHARS = 200_000
let keyCounter = 0
const nextKey = (prefix) => `${prefix}-${++keyCounter}`

export function userMessage({ text, seq = null, id = null, createdAt = null, fromHistory = false, pending = false }) {
  return {
    key: id != null ? `m-${id}` : nextKey('u'),
    id,
    role: 'user',
    text: text ?? '',
    parts: [],
    state: null,
    error: null,
    streaming: false,
    pending,
    seq,
    executionId: null,
    fromHistory,
    createdAt,
  }
}

export function assistantMessage({ executionId = null, id = null, fromHistory = false, createdAt = null, streaming = false } = {}) {
  return {
    key: id != null ? `m-${id}` : nextKey('a'),
    id,
    role: 'assistant',
    text: '',
    parts: [],
    state: null,
    error: null,
    streaming,
    pending: false,
    seq: null,
    executionId,
    fromHistory,
    createdAt,
    closed: false,
  }
}

export function parseArgs(value) {
  if (typeof value !== 'string') return value ?? null
  try {
    return JSON.parse(value)
  } catch {
    return value
  }
}

export function toolCard({ callId, name = '', args = null, status = 'started', result = null }) {
  return { kind: 'tool', callId, name, args: parseArgs(args), status, result, output: [], outputChars: 0, truncated: false }
}

/** All text of an assistant message, parts joined in order. */
export function messageText(msg) {
  if (msg.role !== 'assistant') return msg.text
  return msg.parts.filter((p) => p.kind === 'text').map((p) => p.text).join('')
}

export function appendText(msg, text) {
  if (!text) return
  const last = msg.parts[msg.parts.length - 1]
  if (last && last.kind === 'text') last.text += text
  else msg.parts.push({ kind: 'text', text })
}

export function findToolCard(msg, callId) {
  return msg.parts.find((p) => p.kind === 'tool' && p.callId === callId) || null
}

export function upsertToolCall(msg, { call_id: callId, name, args, result, status }) {
  let card = callId != null ? findToolCard(msg, callId) : null
  if (!card) {
    card = toolCard({ callId: callId ?? nextKey('call'), name, args, status: status || 'started' })
    msg.parts.push(card)
  }
  if (name) card.name = name
  if (args !== undefined && args !== null && args !== '') card.args = parseArgs(args)
  if (status) card.status = status
  if (result !== undefined && result !== null && result !== '') card.result = result
  return card
}

export function appendToolOutput(msg, { call_id: callId, stream = 'stdout', data = '' }) {
  const card = findToolCard(msg, callId) || upsertToolCall(msg, { call_id: callId, status: 'started' })
  const lastChunk = card.output[card.output.length - 1]
  if (lastChunk && lastChunk.stream === stream) lastChunk.data += data
  else card.output.push({ stream, data })
  card.outputChars += data.length
  while (card.outputChars > MAX_TOOL_OUTPUT_CHARS && card.output.length) {
    const first = card.output[0]
    const excess = card.outputChars - MAX_TOOL_OUTPUT_CHARS
    if (first.data.length <= excess) {
      card.output.shift()
      card.outputChars -= first.data.length
    } else {
      first.data = first.data.slice(excess)
      card.outputChars -= excess
    }
    card.truncated = true
  }
  return card
}

/**
 * End of a run's stream. `content` is the final (or partial) text; it agrees with what the
 * deltas built, or is the final turn's text, which then replaces the text after the last tool.
 */
export function finishStream(msg, { content, error, canceled, state }) {
  msg.streaming = false
  if (typeof content === 'string' && content && content !== messageText(msg)) {
    const last = msg.parts[msg.parts.length - 1]
    if (last && last.kind === 'text') last.text = content
    else msg.parts.push({ kind: 'text', text: content })
  }
  for (const part of msg.parts) {
    if (part.kind === 'tool' && part.status === 'started') part.status = canceled ? 'stopped' : 'error'
  }
  msg.state = state || (canceled ? 'canceled' : error ? 'failed' : 'completed')
  msg.error = error || null
}

/** Turns GET /chat/sessions/{id} messages into display messages (one bubble per run). */
export function historyToDisplay(records) {
  const out = []
  const cards = new Map()
  for (const r of records || []) {
    if (r.role === 'user') {
      out.push(userMessage({ text: r.content, id: r.id, createdAt: r.created_at, fromHistory: true }))
      continue
    }
    if (r.role === 'assistant') {
      let target = out[out.length - 1]
      const otherRun = target && r.execution_id && target.executionId && target.executionId !== r.execution_id
      if (!target || target.role !== 'assistant' || target.closed || otherRun) {
        target = assistantMessage({ id: r.id, fromHistory: true, createdAt: r.created_at, executionId: r.execution_id ?? null })
        out.push(target)
      }
      if (!target.executionId && r.execution_id) target.executionId = r.execution_id
      const toolCalls = Array.isArray(r.tool_calls) ? r.tool_calls : []
      if (typeof r.content === 'string' && r.content) {
        const last = target.parts[target.parts.length - 1]
        if (last && last.kind === 'text') last.text += `\n\n${r.content}`
        else target.parts.push({ kind: 'text', text: r.content })
      }
      for (const tc of toolCalls) {
        const card = toolCard({ callId: tc.id, name: tc.function?.name || tc.name || '', args: tc.function?.arguments ?? tc.arguments, status: 'unknown' })
        target.parts.push(card)
        cards.set(tc.id, card)
      }
      if (r.state) target.state = r.state
      if (r.error) target.error = r.error
      if (!toolCalls.length) target.closed = true
      continue
    }
    if (r.role === 'tool') {
      let card = cards.get(r.tool_call_id)
      if (!card) {
        let target = out[out.length - 1]
        if (!target || target.role !== 'assistant' || target.closed) {
          target = assistantMessage({ id: r.id, fromHistory: true, createdAt: r.created_at, executionId: r.execution_id ?? null })
          out.push(target)
        }
        card = toolCard({ callId: r.tool_call_id, name: r.name || 'tool', status: 'unknown' })
        target.parts.push(card)
        cards.set(r.tool_call_id, card)
      }
      card.result = r.content ?? ''
      card.status = 'finished'
      if (r.name && !card.name) card.name = r.name
    }
  }
  for (const card of cards.values()) if (card.status === 'unknown') card.status = 'error'
  return out
}

/** Index just after the last user message (where the current run's messages start). */
export function indexAfterLastUser(messages) {
  for (let i = messages.length - 1; i >= 0; i -= 1) if (messages[i].role === 'user') return i + 1
  return 0
}
