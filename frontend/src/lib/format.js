// Display helpers: durations, sizes, times.

export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(Number(seconds))) return '—'
  let s = Math.max(0, Number(seconds))
  if (s < 10) return `${s.toFixed(1)} s`
  s = Math.floor(s)
  const h = Math.floor(s / 3600)
  const m = Math.floor((s % 3600) / 60)
  const sec = s % 60
  if (h) return `${h} h ${String(m).padStart(2, '0')} m`
  if (m) return `${m} m ${String(sec).padStart(2, '0')} s`
  return `${sec} s`
}

export function formatBytes(bytes) {
  if (bytes === null || bytes === undefined || Number.isNaN(Number(bytes))) return '—'
  let n = Number(bytes)
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let i = 0
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024
    i += 1
  }
  return `${i === 0 ? n : n.toFixed(n < 10 ? 1 : 0)} ${units[i]}`
}

export function formatPercent(value) {
  if (value === null || value === undefined || Number.isNaN(Number(value))) return '—'
  return `${Number(value).toFixed(Number(value) < 10 ? 1 : 0)} %`
}

export function formatTime(iso) {
  if (!iso) return '—'
  const d = new Date(iso)
  if (Number.isNaN(d.getTime())) return String(iso)
  const sameDay = d.toDateString() === new Date().toDateString()
  return sameDay
    ? d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' })
    : d.toLocaleString([], { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' })
}

/** Seconds since an ISO time (or a fallback value in seconds). */
export function secondsSince(iso, now = Date.now(), fallback = null) {
  const t = iso ? Date.parse(iso) : NaN
  if (Number.isNaN(t)) return fallback
  return Math.max(0, (now - t) / 1000)
}

/** The `duration` field of /chat/active may be seconds or a Go-style string ("1m2.5s"). */
export function parseDurationField(value) {
  if (typeof value === 'number') return value
  if (typeof value !== 'string' || !value) return null
  const plain = Number(value)
  if (!Number.isNaN(plain)) return plain
  const units = { h: 3600, m: 60, s: 1, ms: 0.001, us: 1e-6, 'µs': 1e-6, ns: 1e-9 }
  let total = 0
  let matched = false
  for (const [, num, unit] of value.matchAll(/([\d.]+)(ms|us|µs|ns|h|m|s)/g)) {
    total += Number(num) * units[unit]
    matched = true
  }
  return matched ? total : null
}

/** Execution ids start with their session id; the end is what tells them apart. */
export function executionTail(id, length = 8) {
  if (!id) return ''
  const s = String(id)
  return s.length > length ? `…${s.slice(-length)}` : s
}
