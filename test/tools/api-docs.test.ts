// Every function a public entry exports (aura-orchestration, /testing, /dev) carries a TSDoc
// comment with an @example: read with the TypeScript compiler from the entry files themselves,
// so a new export without one fails here.
import { describe, expect, it } from 'vitest'
import ts from 'typescript'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const ENTRIES = ['runtime/index.ts', 'runtime/testing/index.ts', 'tools/dev.ts']

/** Exported functions (not classes, not namespaces) of each entry without an @example. */
function functionsWithoutExample(): { entry: string; name: string }[] {
  const files = ENTRIES.map((e) => join(root, e))
  const program = ts.createProgram(files, {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    allowJs: false,
    noEmit: true,
  })
  const checker = program.getTypeChecker()
  const missing: { entry: string; name: string }[] = []
  for (const [i, file] of files.entries()) {
    const source = program.getSourceFile(file)!
    const module = checker.getSymbolAtLocation(source)!
    for (const exported of checker.getExportsOfModule(module)) {
      const symbol = exported.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exported) : exported
      const declaration = symbol.declarations?.[0]
      if (
        !declaration ||
        !(
          ts.isFunctionDeclaration(declaration) ||
          (ts.isVariableDeclaration(declaration) && declaration.initializer && ts.isArrowFunction(declaration.initializer))
        )
      )
        continue
      const tags = ts.getJSDocTags(ts.isVariableDeclaration(declaration) ? declaration.parent.parent : declaration)
      if (!tags.some((tag) => tag.tagName.text === 'example')) missing.push({ entry: ENTRIES[i]!, name: exported.name })
    }
  }
  return missing
}

describe('public API docs', () => {
  it('every exported function has an @example', () => {
    expect(functionsWithoutExample()).toEqual([])
  }, 60_000)
})
