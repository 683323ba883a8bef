/**
 * The tree's layering, checked on the sources: what two processes agree on
 * lives in src/api and depends on nothing above it, the CLI depends on api
 * and lib only, lib on nothing of xdplb's, and no module imports itself
 * round a cycle. Relative imports only: node: and npm packages are free.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** Folders under src/ whose files may import (relatively) only from the folders listed; others are not limited here. */
const MAY_IMPORT: Record<string, { from: readonly string[]; why: string }> = {
  cli: { from: ['cli', 'api', 'lib'], why: 'the CLI talks to the agent through the contract in src/api, not through its code' },
  api: { from: ['api', 'lib'], why: 'src/api is what two processes agree on, as plain data: it depends on nothing above it' },
  lib: { from: ['lib'], why: 'src/lib is what every part uses: it depends on none of them' },
};

/** A module's imports: path relative to the repository -> the specifiers it imports. */
type ImportGraph = Map<string, string[]>;

// Static import/export-from (also `import type`, multi-line braces), side-effect imports, dynamic import('...').
const IMPORT_PATTERNS = [
  /^[ \t]*(?:import|export)\s+(?:type\s+)?(?:[\w$]+\s*,?\s*)?(?:\*\s*(?:as\s+[\w$]+)?|\{[^}]*\})?\s*from\s*['"]([^'"]+)['"]/gm,
  /^[ \t]*import\s*['"]([^'"]+)['"]/gm,
  /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g,
];

function importSpecifiers(source: string): string[] {
  return IMPORT_PATTERNS.flatMap((p) => [...source.matchAll(p)].map((m) => m[1]!));
}

function tsFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return tsFiles(p);
    return p.endsWith('.ts') && !p.endsWith('.d.ts') ? [p] : [];
  });
}

/** Every .ts file under src/ and the files its relative imports name (".js" as compiled, resolved to the ".ts"). */
function sourceGraph(): ImportGraph {
  const graph: ImportGraph = new Map();
  for (const file of tsFiles(join(ROOT, 'src'))) {
    const imports = importSpecifiers(readFileSync(file, 'utf8'))
      .filter((s) => s.startsWith('.'))
      .map((s) => {
        const target = resolve(dirname(file), s.replace(/\.js$/, '.ts'));
        assert.ok(existsSync(target), `${relative(ROOT, file)} imports "${s}", which is no file under src/`);
        return relative(ROOT, target);
      });
    graph.set(relative(ROOT, file), imports);
  }
  return graph;
}

const folderOf = (path: string): string => path.split('/')[1] ?? '';

/** Imports that break MAY_IMPORT, one message each naming the file, the import and the rule. */
function layerViolations(graph: ImportGraph): string[] {
  const out: string[] = [];
  for (const [file, imports] of graph) {
    const rule = MAY_IMPORT[folderOf(file)];
    if (!rule) continue;
    for (const target of imports) {
      if (!rule.from.includes(folderOf(target))) {
        out.push(`${file} imports ${target}: src/${folderOf(file)} may import only from ${rule.from.map((f) => `src/${f}`).join(', ')} (${rule.why})`);
      }
    }
  }
  return out;
}

/** Every import cycle, each named once as a path "a -> b -> a" (one per strongly connected component). */
function importCycles(graph: ImportGraph): string[] {
  // Tarjan's strongly connected components; a component of more than one file, or a file importing itself, holds a cycle.
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const components: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, index.size);
    low.set(v, index.get(v)!);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1 || (graph.get(v) ?? []).includes(v)) components.push(component);
    }
  };
  for (const v of [...graph.keys()].sort()) if (!index.has(v)) visit(v);
  return components.map((c) => cyclePath(graph, new Set(c)).join(' -> ')).sort();
}

/** A cycle through the first file (sorted) of a component, staying inside it: breadth first, so the shortest. */
function cyclePath(graph: ImportGraph, component: Set<string>): string[] {
  const start = [...component].sort()[0]!;
  const cameFrom = new Map<string, string>();
  const queue = [start];
  for (let i = 0; i < queue.length; i++) {
    const v = queue[i]!;
    for (const w of graph.get(v) ?? []) {
      if (!component.has(w)) continue;
      if (w === start) {
        const path = [start];
        for (let u: string | undefined = v; u !== undefined && u !== start; u = cameFrom.get(u)) path.splice(1, 0, u);
        return [...path, start];
      }
      if (!cameFrom.has(w)) {
        cameFrom.set(w, v);
        queue.push(w);
      }
    }
  }
  return [start, '(cycle not found)'];
}

describe('the checks themselves', () => {
  test('import forms: static, type-only, multi-line, re-export, side effect, dynamic', () => {
    const source = [
      "import assert from 'node:assert';",
      "import type { A } from './a.js';",
      "import {\n  B,\n  type C,\n} from '../b.js';",
      "import D, { E } from './d.js';",
      "import * as F from './f.js';",
      "export { G } from './g.js';",
      "export * from './h.js';",
      "import './side-effect.js';",
      "const m = await import('./dynamic.js');",
      "// import { X } from './commented.js';",
      " * import { Y } from './doc-comment.js'",
      "export function z() { return 'from \\'./not-an-import.js\\''; }",
    ].join('\n');
    assert.deepEqual(importSpecifiers(source).sort(),
      ['node:assert', './a.js', '../b.js', './d.js', './f.js', './g.js', './h.js', './side-effect.js', './dynamic.js'].sort());
  });

  test('a CLI file importing the agent, and api importing the controller, are named', () => {
    const graph: ImportGraph = new Map([
      ['src/cli/trace-command.ts', ['src/api/trace.ts', 'src/agent/trace/tracer.ts']],
      ['src/api/trace.ts', ['src/lib/ip.ts', 'src/controller/conditions.ts']],
      ['src/lib/ip.ts', []],
    ]);
    assert.deepEqual(layerViolations(graph).map((m) => m.split(':')[0]), [
      'src/cli/trace-command.ts imports src/agent/trace/tracer.ts',
      'src/api/trace.ts imports src/controller/conditions.ts',
    ]);
  });

  test('a cycle is named by its files, once', () => {
    const graph: ImportGraph = new Map([
      ['src/agent/a.ts', ['src/agent/b.ts']],
      ['src/agent/b.ts', ['src/agent/c.ts', 'src/lib/log.ts']],
      ['src/agent/c.ts', ['src/agent/a.ts']],
      ['src/lib/log.ts', []],
      ['src/lib/self.ts', ['src/lib/self.ts']],
    ]);
    assert.deepEqual(importCycles(graph), [
      'src/agent/a.ts -> src/agent/b.ts -> src/agent/c.ts -> src/agent/a.ts',
      'src/lib/self.ts -> src/lib/self.ts',
    ]);
  });
});

describe('the tree', () => {
  const graph = sourceGraph();

  test('the import graph covers src/', () => {
    assert.ok(graph.size > 50, `${graph.size} files read under src/`);
    assert.ok((graph.get('src/agent/main.ts') ?? []).length > 3, 'imports of src/agent/main.ts found');
  });

  test('src/cli imports only src/api and src/lib; src/api only src/lib; src/lib nothing of xdplb', () => {
    assert.deepEqual(layerViolations(graph), []);
  });

  test('no import cycles', () => {
    assert.deepEqual(importCycles(graph), []);
  });
});
