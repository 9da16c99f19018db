// Execution states (DESIGN.md, "Execution states") and how the app names them.

export const TERMINAL_STATES = new Set(['completed', 'failed', 'canceled', 'killed', 'timed_out', 'interrupted'])
export const RUNNING_STATES = new Set(['queued', 'starting', 'running', 'canceling'])

const LABELS = {
  queued: 'Queued',
  starting: 'Starting',
  running: 'Running',
  canceling: 'Canceling',
  completed: 'Completed',
  failed: 'Failed',
  canceled: 'Canceled',
  killed: 'Killed',
  timed_out: 'Timed out',
  interrupted: 'Interrupted',
}

export const stateLabel = (state) => LABELS[state] || (state ? String(state) : 'Unknown')
export const isTerminal = (state) => TERMINAL_STATES.has(state)
/** States worth a note on the reply itself: anything but a normal end. */
export const isAbnormalEnd = (state) => isTerminal(state) && state !== 'completed'
