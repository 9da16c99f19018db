import { describe, expect, it } from 'vitest'
import { mount } from '@vue/test-utils'
import ChatComposer from '@/components/ChatComposer.vue'
import ToolCallCard from '@/components/ToolCallCard.vue'
import MessageStatus from '@/components/MessageStatus.vue'
import ChatHeader from '@/components/ChatHeader.vue'
import { toolCard } from '@/lib/messages.js'

describe('ChatComposer keyboard', () => {
  it('Enter sends, Shift+Enter does not, Esc cancels only while running', async () => {
    const w = mount(ChatComposer, { props: { sessionId: 'web:chat:k1', running: false } })
    const ta = w.get('[data-testid="composer-input"]')
    await ta.setValue('line one')
    await ta.trigger('keydown', { key: 'Enter', shiftKey: true })
    expect(w.emitted('send')).toBeUndefined()
    await ta.trigger('keydown', { key: 'Enter' })
    expect(w.emitted('send')).toEqual([['line one']])
    expect(ta.element.value).toBe('')
    await ta.trigger('keydown', { key: 'Escape' })
    expect(w.emitted('cancel')).toBeUndefined()

    await w.setProps({ running: true })
    expect(w.find('[data-testid="send-button"]').exists()).toBe(false)
    expect(w.get('[data-testid="cancel-button"]').classes()).toContain('button--danger')
    await ta.setValue('not yet')
    await ta.trigger('keydown', { key: 'Enter' })
    expect(w.emitted('send')).toHaveLength(1)
    await ta.trigger('keydown', { key: 'Escape' })
    await w.get('[data-testid="cancel-button"]').trigger('click')
    expect(w.emitted('cancel')).toHaveLength(2)
  })
})

describe('ToolCallCard', () => {
  it('is open while the tool runs, closes when done, and toggles on click', async () => {
    const call = toolCard({ callId: 'c1', name: 'exec', args: { command: 'ls -l' } })
    call.output.push({ stream: 'stdout', data: 'file\n' })
    call.outputChars = 5
    const w = mount(ToolCallCard, { props: { call } })
    expect(w.get('[data-testid="tool-output"]').text()).toContain('file')
    expect(w.text()).toContain('ls -l')
    await w.setProps({ call: { ...call, status: 'finished', result: 'file' } })
    expect(w.find('[data-testid="tool-output"]').exists()).toBe(false)
    await w.get('[data-testid="tool-card-toggle"]').trigger('click')
    expect(w.get('[data-testid="tool-result"]').text()).toBe('file')
  })
})

describe('MessageStatus', () => {
  it('says how a reply ended, without repeating the label', () => {
    expect(mount(MessageStatus, { props: { state: 'canceled', error: 'Execution canceled by user' } }).text()).toBe('Canceled: Execution canceled by user')
    expect(mount(MessageStatus, { props: { state: 'failed', error: 'Failed to start' } }).text()).toBe('Failed to start')
    expect(mount(MessageStatus, { props: { state: 'killed' } }).text()).toBe('Killed')
  })
})

describe('ChatHeader', () => {
  it('shows a queued run with its place in the queue', () => {
    const queued = mount(ChatHeader, { props: { title: 'T', running: true, state: 'queued', queuePosition: 2 } })
    expect(queued.get('[data-testid="chat-running"]').text()).toBe('Queued (#2)')
    const canceling = mount(ChatHeader, { props: { title: 'T', running: true, state: 'canceling' } })
    expect(canceling.get('[data-testid="chat-running"]').text()).toBe('Canceling')
    expect(mount(ChatHeader, { props: { title: 'T', running: false } }).find('[data-testid="chat-running"]').exists()).toBe(false)
  })
})
