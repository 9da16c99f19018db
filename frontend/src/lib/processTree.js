// Turns the flat `processes` list of an active execution into a tree (by ppid).

export function buildProcessTree(processes, rootPid = null) {
  const list = Array.isArray(processes) ? processes : []
  const byPid = new Map()
  for (const p of list) byPid.set(p.pid, { ...p, children: [] })
  const roots = []
  for (const node of byPid.values()) {
    const parent = byPid.get(node.ppid)
    if (parent && parent !== node && node.pid !== rootPid) parent.children.push(node)
    else roots.push(node)
  }
  const sortTree = (nodes) => {
    nodes.sort((a, b) => (a.pid === rootPid ? -1 : b.pid === rootPid ? 1 : a.pid - b.pid))
    for (const n of nodes) sortTree(n.children)
    return nodes
  }
  return sortTree(roots)
}

export function countProcesses(nodes) {
  return nodes.reduce((n, node) => n + 1 + countProcesses(node.children), 0)
}
