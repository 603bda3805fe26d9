// Collects benchmark figures, prints them as a table and writes bench-results.json at the repo
// root: an object keyed by figure name, each { value, unit }. Later benches add their keys to the
// same file (existing keys from other benches are kept).

import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

export interface Figure {
  value: number
  unit: string
}

export class BenchReport {
  readonly figures = new Map<string, Figure & { note?: string }>()

  add(key: string, value: number, unit: string, note?: string): void {
    this.figures.set(key, { value: Number.isFinite(value) ? Number(value.toPrecision(6)) : value, unit, ...(note ? { note } : {}) })
  }

  print(): void {
    const rows = [...this.figures].map(([key, f]) => [key, String(f.value), f.unit, f.note ?? ''])
    const widths = [0, 1, 2].map((i) => Math.max(...rows.map((r) => r[i]!.length), 6))
    for (const row of rows) console.log(`${row[0]!.padEnd(widths[0]!)}  ${row[1]!.padStart(widths[1]!)}  ${row[2]!.padEnd(widths[2]!)}  ${row[3]}`)
  }

  write(root: string): string {
    const file = join(root, 'bench-results.json')
    const previous: Record<string, Figure> = existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : {}
    for (const [key, f] of this.figures) previous[key] = { value: f.value, unit: f.unit }
    writeFileSync(file, `${JSON.stringify(previous, null, 2)}\n`)
    return file
  }
}

/** Times `fn` `iterations` times (after `warmup` runs) and returns each duration in ms. */
export async function sample(iterations: number, fn: () => Promise<unknown> | unknown, warmup = Math.min(20, iterations)): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await fn()
  const out: number[] = []
  for (let i = 0; i < iterations; i++) {
    const start = performance.now()
    await fn()
    out.push(performance.now() - start)
  }
  return out
}

export function quantile(samples: number[], q: number): number {
  const sorted = [...samples].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? 0
}
