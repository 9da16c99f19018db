// Session ids are chosen by the client: `web:chat:<random>`.
export const SESSION_PREFIX = 'web:chat:'

export function newSessionId() {
  const bytes = new Uint8Array(9)
  globalThis.crypto.getRandomValues(bytes)
  const random = Array.from(bytes, (b) => b.toString(36).padStart(2, '0')).join('').slice(0, 14)
  return `${SESSION_PREFIX}${random}`
}
