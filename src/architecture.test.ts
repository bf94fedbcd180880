/**
 * Architecture rules, checked on the import graph of the production code
 * under src/ (every .ts file except *.test.ts and anything in a
 * test-support/ folder). The graph comes from typescript's pre-processor
 * (`ts.preProcessFile`: no full parse, no type checking, so it stays fast)
 * and every relative specifier is resolved the way tsc resolves it
 * (NodeNext: a `./x.js` specifier names `./x.ts`); a specifier that does not
 * resolve still counts, as the .ts file it names.
 *
 * An edge is any static `import`/`export … from`, `import type`, a type
 * position `import('x')`, or a dynamic `import('x')` with a literal
 * specifier. Every rule counts type-only edges too (see the cycle rule).
 *
 * Rules:
 *  1. no import cycles;
 *  2. a stage (src/stages/<a>/) imports no other stage (src/stages/<b>/),
 *     nor src/gateway.ts, nor the pipeline table src/pipeline/index.ts (the
 *     table imports the stages, never the reverse); shared types belong in
 *     src/contracts/, which stages may import;
 *  3. a contract file (src/contracts/) imports nothing at run time: only
 *     `import type` / `export type … from` another contract file or a
 *     `node:` builtin;
 *  4. production code never imports a test file or a test-support folder.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type TS from 'typescript';

// Required, not imported: importing typescript's 9 MB CommonJS bundle from ESM
// makes Node scan all of it for named exports, which takes longer than the rest
// of this file together.
const ts: typeof TS = createRequire(import.meta.url)('typescript');

const SRC = dirname(fileURLToPath(import.meta.url));
const ROOT = dirname(SRC);

type EdgeKind = 'value' | 'type' | 'dynamic';

interface Edge {
  /** Absolute path of the importing file. */
  from: string;
  /** 1-based line of the import in `from`. */
  line: number;
  /** Offset of the specifier's string literal in `from`. */
  pos: number;
  specifier: string;
  /** Absolute path of the imported file; undefined for packages and builtins. */
  to: string | undefined;
}

const show = (file: string): string => relative(ROOT, file).split(sep).join('/');
const inside = (dir: string, file: string): boolean => file.startsWith(dir + sep);

function isTestFile(file: string): boolean {
  return /\.test\.[cm]?tsx?$/.test(file) || file.split(sep).includes('test-support');
}

function listSources(dir: string): string[] {
  const files: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = join(dir, entry.name);
    if (entry.isDirectory()) files.push(...listSources(full));
    else if (/\.[cm]?tsx?$/.test(entry.name) && !entry.name.endsWith('.d.ts')) files.push(full);
  }
  return files;
}

const compilerOptions: TS.CompilerOptions = {
  module: ts.ModuleKind.NodeNext,
  moduleResolution: ts.ModuleResolutionKind.NodeNext,
  resolveJsonModule: true,
  allowJs: false,
};
const resolutionCache = ts.createModuleResolutionCache(ROOT, (name) => name, compilerOptions);

function resolveLocal(specifier: string, from: string): string | undefined {
  if (!specifier.startsWith('.') && !specifier.startsWith('/') && !specifier.startsWith('#'))
    return undefined;
  const { resolvedModule } = ts.resolveModuleName(
    specifier,
    from,
    compilerOptions,
    ts.sys,
    resolutionCache,
    undefined,
    ts.ModuleKind.ESNext,
  );
  if (resolvedModule && !resolvedModule.isExternalLibraryImport)
    return resolve(resolvedModule.resolvedFileName);
  if (specifier.startsWith('#')) return undefined;
  // Unresolvable (a file being moved, say): keep the edge with the .ts path it
  // names, so a broken import cannot hide a violation. tsc reports it as broken.
  return resolve(dirname(from), specifier)
    .replace(/\.js$/, '.ts')
    .replace(/\.mjs$/, '.mts')
    .replace(/\.cjs$/, '.cts');
}

/**
 * The imports of a file, from typescript's pre-processor: a scanner over the
 * tokens, four times faster than a full parse, which only `kindOf` needs.
 */
function importsOf(file: string): Edge[] {
  const text = readFileSync(file, 'utf8');
  let line = 1;
  let counted = 0;
  // importedFiles come in source order, so the newlines are counted once.
  const lineOf = (pos: number): number => {
    if (pos < counted) [line, counted] = [1, 0];
    for (; counted < pos; counted++) if (text.charCodeAt(counted) === 10) line++;
    return line;
  };
  return ts.preProcessFile(text, true, true).importedFiles.map(({ fileName, pos }) => ({
    from: file,
    line: lineOf(pos),
    pos,
    specifier: fileName,
    to: resolveLocal(fileName, file),
  }));
}

const kindsByFile = new Map<string, Map<number, EdgeKind>>();

/** Whether an import is erased at build time: parses the importing file, once. */
function kindOf(edge: Edge): EdgeKind {
  let kinds = kindsByFile.get(edge.from);
  if (!kinds) {
    const found = new Map<number, EdgeKind>();
    const source = ts.createSourceFile(edge.from, readFileSync(edge.from, 'utf8'), ts.ScriptTarget.Latest);
    const add = (literal: TS.Node | undefined, kind: EdgeKind) => {
      if (literal && ts.isStringLiteralLike(literal)) found.set(literal.getStart(source), kind);
    };
    const visit = (node: TS.Node): void => {
      if (ts.isImportDeclaration(node)) {
        add(node.moduleSpecifier, node.importClause?.isTypeOnly ? 'type' : 'value');
      } else if (ts.isExportDeclaration(node)) {
        add(node.moduleSpecifier, node.isTypeOnly ? 'type' : 'value');
      } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) {
        add(node.moduleReference.expression, node.isTypeOnly ? 'type' : 'value');
      } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) {
        add(node.argument.literal, 'type');
      } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
        add(node.arguments[0], 'dynamic');
      } else if (
        ts.isCallExpression(node) &&
        ts.isIdentifier(node.expression) &&
        node.expression.text === 'require'
      ) {
        add(node.arguments[0], 'value');
      }
      ts.forEachChild(node, visit);
    };
    visit(source);
    kinds = found;
    kindsByFile.set(edge.from, kinds);
  }
  const kind = kinds.get(edge.pos);
  if (kind === undefined) {
    throw new Error(
      `architecture.test.ts cannot classify ${show(edge.from)}:${edge.line} '${edge.specifier}'`,
    );
  }
  return kind;
}

const production = listSources(SRC)
  .filter((file) => !isTestFile(file))
  .sort();
const productionSet = new Set(production);
const edges = production.flatMap(importsOf);

const describeEdge = (edge: Edge): string =>
  `${show(edge.from)}:${edge.line} → ${edge.to ? show(edge.to) : edge.specifier}` +
  (edge.to && !existsSync(edge.to) ? ' (missing file)' : '') +
  { value: '', type: ' (type-only)', dynamic: ' (dynamic import)' }[kindOf(edge)];

function report(title: string, lines: string[]): string {
  return `${title} (${lines.length}):\n  ${lines.join('\n  ')}`;
}

/** Tarjan's strongly connected components. */
function stronglyConnected(nodes: string[], next: Map<string, Set<string>>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const components: string[][] = [];
  let counter = 0;
  const connect = (node: string): void => {
    index.set(node, counter);
    low.set(node, counter);
    counter++;
    stack.push(node);
    onStack.add(node);
    for (const target of next.get(node) ?? []) {
      if (!index.has(target)) {
        connect(target);
        low.set(node, Math.min(low.get(node)!, low.get(target)!));
      } else if (onStack.has(target)) {
        low.set(node, Math.min(low.get(node)!, index.get(target)!));
      }
    }
    if (low.get(node) === index.get(node)) {
      const component: string[] = [];
      let member: string;
      do {
        member = stack.pop()!;
        onStack.delete(member);
        component.push(member);
      } while (member !== node);
      components.push(component.sort());
    }
  };
  for (const node of nodes) if (!index.has(node)) connect(node);
  return components;
}

describe('architecture', () => {
  it('has no import cycles in production code', () => {
    // Type-only imports are counted too. They are erased at build time, so they
    // cannot create a run-time cycle, but two modules that need each other's
    // types are still one module in two files: a design smell to untangle (move
    // the shared types to src/contracts/). Dynamic imports count as well.
    const internal = edges.filter((edge) => edge.to !== undefined && productionSet.has(edge.to));
    const next = new Map<string, Set<string>>();
    for (const edge of internal) {
      const targets = next.get(edge.from) ?? new Set<string>();
      targets.add(edge.to!);
      next.set(edge.from, targets);
    }
    const cycles = stronglyConnected(production, next).filter(
      (component) => component.length > 1 || next.get(component[0]!)?.has(component[0]!),
    );
    const lines = cycles.map((component, n) => {
      const members = new Set(component);
      const within = internal.filter((edge) => members.has(edge.from) && members.has(edge.to!));
      return (
        `cycle ${n + 1}: ${component.map(show).join(', ')}\n` +
        within.map((edge) => `      ${describeEdge(edge)}`).join('\n')
      );
    });
    assert.equal(lines.length, 0, report('Import cycles; break one edge in each', lines));
  });

  it('keeps stages apart: a stage imports no other stage, the gateway, or the pipeline table', () => {
    const stages = join(SRC, 'stages');
    const forbidden = new Set([join(SRC, 'gateway.ts'), join(SRC, 'pipeline', 'index.ts')]);
    const stageOf = (file: string): string | undefined => {
      if (!inside(stages, file)) return undefined;
      const parts = relative(stages, file).split(sep);
      return parts.length > 1 ? parts[0] : undefined;
    };
    const offending = edges.filter((edge) => {
      const own = stageOf(edge.from);
      if (own === undefined || edge.to === undefined) return false;
      if (forbidden.has(edge.to)) return true;
      return inside(stages, edge.to) && !inside(join(stages, own), edge.to);
    });
    assert.equal(
      offending.length,
      0,
      report(
        'Stage imports of another stage, src/gateway.ts or src/pipeline/index.ts (move what is shared to src/contracts/)',
        offending.map(describeEdge),
      ),
    );
  });

  it('keeps contracts free of imports: only `import type` from src/contracts/ or node: builtins', () => {
    const contracts = join(SRC, 'contracts');
    const offending: string[] = [];
    for (const edge of edges) {
      if (!inside(contracts, edge.from)) continue;
      const allowedSource =
        edge.specifier.startsWith('node:') || (edge.to !== undefined && inside(contracts, edge.to));
      const problems = [
        ...(kindOf(edge) === 'type' ? [] : ['not `import type`/`export type`']),
        ...(allowedSource ? [] : ['not a contract or a node: builtin']),
      ];
      if (problems.length > 0) offending.push(`${describeEdge(edge)}: ${problems.join('; ')}`);
    }
    assert.equal(
      offending.length,
      0,
      report('Contract imports other than `import type` from src/contracts/ or node:', offending),
    );
  });

  it('never imports a test file or a test-support folder from production code', () => {
    const offending = edges.filter((edge) => edge.to !== undefined && isTestFile(edge.to));
    assert.equal(offending.length, 0, report('Production imports of test code', offending.map(describeEdge)));
  });
});
