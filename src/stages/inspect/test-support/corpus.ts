/**
 * The detection corpora (`corpus/`): attack payloads by category and
 * ordinary API traffic that naive filters flag. Each payload is inspected
 * as the value of a JSON body field (JSON lines: as the whole body), the
 * way an upstream would receive it; rates are counted over payloads.
 */
import { readFileSync } from 'node:fs';
import { CATEGORIES, type Category } from '../../../openapi/schema.js';
import type { InspectionSettings } from '../../../openapi/settings.js';
import { emptyInputs, type Inputs } from '../engine.js';
import { collectJson, detect } from '../index.js';

const DIR = new URL('../corpus/', import.meta.url);

export const ATTACK_FILES: Record<Category, string> = {
  sqli: 'sqli.txt',
  xss: 'xss.txt',
  cmdi: 'cmdi.txt',
  traversal: 'traversal.txt',
  nosql: 'nosql.jsonl',
  ssti: 'ssti.txt',
};

/**
 * Payloads of a corpus file: text files one per line, JSON-lines files one
 * JSON value per line. A JSON-lines file may open with `#` lines saying how
 * it was written (no JSON value starts with `#`); a text file has no header,
 * as any line of it may be a payload.
 */
export function readCorpus(file: string): unknown[] {
  const text = readFileSync(new URL(file, DIR), 'utf8');
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  return file.endsWith('.jsonl')
    ? lines.filter((l) => !l.startsWith('#')).map((l) => JSON.parse(l) as unknown)
    : lines;
}

function inputsOf(payload: unknown): Inputs {
  const inputs = emptyInputs();
  collectJson(typeof payload === 'string' ? { value: payload } : payload, ['body'], inputs);
  return inputs;
}

/** A route's default inspection settings: every category, paranoia level 1, threshold 5. */
export const DEFAULT_SETTINGS: InspectionSettings = {
  mode: 'block',
  categories: [...CATEGORIES],
  exclusions: [],
  timeoutMicros: 1_000_000,
  paranoiaLevel: 1,
  anomalyThreshold: 5,
};

/** The rules that make a payload rejected under the default settings (none: it passes). */
export function rulesFor(payload: unknown, settings = DEFAULT_SETTINGS): string[] {
  const verdict = detect(inputsOf(payload), settings);
  return verdict.reject ? verdict.detections.map((d) => `${d.category}:${d.rule}`) : [];
}

export interface RateReport {
  total: number;
  hits: number;
  /** Attack corpora: payloads detected by a rule of their own category. */
  own: number;
  /** Payloads on the wrong side: missed attacks, or flagged ordinary values (with the rules). */
  wrong: { payload: unknown; rules: string[] }[];
}

export function detectionRate(category: Category): RateReport {
  const payloads = readCorpus(ATTACK_FILES[category]);
  const wrong: RateReport['wrong'] = [];
  let own = 0;
  for (const p of payloads) {
    const rules = rulesFor(p);
    if (rules.length === 0) wrong.push({ payload: p, rules: [] });
    if (rules.some((r) => r.startsWith(`${category}:`))) own++;
  }
  return { total: payloads.length, hits: payloads.length - wrong.length, own, wrong };
}

export function falsePositiveRate(): RateReport {
  const payloads = [
    ...readCorpus('benign.jsonl'),
    ...readCorpus('benign-bodies.jsonl'),
    ...readCorpus('benign-extended.jsonl'),
  ];
  const wrong: RateReport['wrong'] = [];
  for (const p of payloads) {
    const rules = rulesFor(p);
    if (rules.length > 0) wrong.push({ payload: p, rules });
  }
  return { total: payloads.length, hits: wrong.length, own: 0, wrong };
}

/** The CRS 4 families the compiled CRS 3.3.4 misses (`corpus/crs4/`): payloads as JSON body values. */
export const CRS4_FILES = { sqli: 'crs4/sqli.txt', xss: 'crs4/xss.txt', rce: 'crs4/rce.txt' } as const;

/** Whether a request to `path` (the canonical path) is rejected under the default settings. */
export function pathRejected(path: string): boolean {
  const inputs = emptyInputs();
  inputs.filename.push({ location: ['path'], text: path });
  inputs.basename.push({ location: ['path'], text: path.slice(path.lastIndexOf('/') + 1) });
  inputs.uri.push({ location: ['uri'], text: path });
  return detect(inputs, DEFAULT_SETTINGS).reject;
}

/** A small deterministic generator (mulberry32). */
export function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
