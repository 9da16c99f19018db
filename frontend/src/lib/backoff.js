// Reconnect delays: exponential, capped, with jitter so many tabs do not reconnect in step.

export function backoffDelay(attempt, { base = 500, factor = 2, max = 15000, jitter = 0.2, random = Math.random } = {}) {
  const raw = Math.min(max, base * factor ** Math.max(0, attempt))
  const spread = raw * jitter
  return Math.round(Math.min(max, Math.max(0, raw - spread + random() * 2 * spread)))
}
