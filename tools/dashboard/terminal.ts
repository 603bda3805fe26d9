// `npm start -- --dashboard`: the CLI's peers are child processes, so the dashboard is fed from
// their IPC messages (see dashboard-feeds.ts `inputsFromIpc` for what is understood).

import type { ChildProcess } from 'node:child_process'
import { startDashboard, type Dashboard, type DashboardOptions } from './dashboard.js'
import { ipcFeed } from './feeds.js'

export interface CliPeer {
  index: number
  process: ChildProcess
  peerId: string
  addresses: string[]
}

/** Starts the dashboard over the CLI's peer processes and prints where it is. */
export async function startCliDashboard(peers: CliPeer[], options: DashboardOptions = {}): Promise<Dashboard> {
  const feed = ipcFeed(peers.map((p) => ({ process: p.process, label: `p${p.index + 1}`, peerId: p.peerId, addresses: p.addresses })))
  const dashboard = await startDashboard(feed, options)
  console.log(`  dashboard: ${dashboard.url}`)
  return dashboard
}
