/**
 * Inspection cost per request, in CPU time, for a typical 200-byte query,
 * a 4 KB JSON body, and a JSON body of names, addresses and prose in
 * several languages and scripts, at paranoia levels 1 and 2 (the engine and the
 * scoring, as the inspect stage runs them; parsing is the request view's),
 * three ways: every value never seen before (names and headers too: the
 * worst case); new values with the names, headers and path recurring, as a
 * client of an API sends them (the typical request); and the same values
 * again (which the engine's inert-value cache leaves out of its runs).
 *
 *   npm run bench:inspect            # pin to one core: taskset -c 1 npm run bench:inspect
 *
 * The first row is a loop of fixed work timed the same way (`fixedWork`): its p99 over its p50 is
 * the machine's own noise, which every row's p99 carries too.
 */
import { CATEGORIES } from '../../src/openapi/schema.js';
import type { InspectionSettings } from '../../src/openapi/settings.js';
import { emptyInputs, type Inputs } from '../../src/stages/inspect/engine.js';
import { collectJson, detect } from '../../src/stages/inspect/index.js';

const out = (line: string): boolean => process.stdout.write(`${line}\n`);
const err = (line: string): boolean => process.stderr.write(`${line}\n`);

const ROUNDS = Number(process.env.ROUNDS ?? 5000);

function query(): Inputs {
  const inputs = emptyInputs();
  const pairs: [string, string][] = [
    ['q', 'red running shoes for women'],
    ['category', 'sports/footwear'],
    ['sort', 'price_asc'],
    ['page', '3'],
    ['utm_source', 'newsletter'],
    ['utm_campaign', 'spring-sale-2024'],
    ['ref', 'https://example.com/home?x=1'],
  ];
  const raw = pairs.map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join('&');
  for (const [k, v] of pairs) {
    inputs.args.push({ location: ['query', k], text: v });
    inputs.args_names.push({ location: ['query', k], text: k });
  }
  inputs.query_string.push({ location: ['query'], text: raw });
  inputs.uri.push({ location: ['uri'], text: `/products/search?${raw}` });
  inputs.filename.push({ location: ['path'], text: '/products/search' });
  inputs.basename.push({ location: ['path'], text: 'search' });
  for (const [k, v] of [
    [
      'user-agent',
      'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36',
    ],
    ['accept', 'application/json'],
    ['accept-language', 'en-GB,en;q=0.9'],
  ] as const) {
    inputs.headers.push({ location: ['header', k], text: v });
    inputs.headers_names.push({ location: ['header', k], text: k });
  }
  return inputs;
}

function json4k(): Inputs {
  const items = Array.from({ length: 25 }, (_, i) => ({
    sku: `SKU-${1000 + i}`,
    name: `Product number ${i} with a longer descriptive name`,
    quantity: i + 1,
    note: i % 3 === 0 ? 'Please gift wrap, thank you!' : '',
    price: { amount: 19.99 + i, currency: 'EUR' },
  }));
  const body = {
    customer: { name: "Seán O'Brien", email: 'sean@example.com' },
    items,
    comment: 'Leave at the door.',
  };
  const inputs = query();
  collectJson(body, ['body'], inputs);
  err(`4 KB JSON body: ${JSON.stringify(body).length} bytes`);
  return inputs;
}

/** A JSON body of about 2 KB whose text is mostly beyond ASCII: names, addresses, prose. */
function jsonWorld(): Inputs {
  const people = [
    ["Seán O'Brien", '8 rue de la Paix, 75002 Paris', 'Très bien, merci : livrez après 18 h.'],
    ['Jürgen Müller', 'Hauptstraße 5, 10115 Berlin', 'Bitte beim Nachbarn abgeben, wenn niemand öffnet.'],
    ['José García', 'Calle de Alcalá 42, Madrid', '¿Pueden envolverlo para regalo? ¡Gracias!'],
    ['Łukasz Żółć', 'ul. Świętokrzyska 7, Warszawa', 'Proszę dzwonić przed dostawą.'],
    ['Αλέξανδρος Παπαδόπουλος', 'Οδός Ερμού 10, Αθήνα', 'Ευχαριστώ πολύ για την εξυπηρέτηση.'],
    ['Владимир Иванов', 'ул. Тверская, д. 7, Москва', 'Позвоните, пожалуйста, за час до доставки.'],
    ['山田太郎', '東京都千代田区丸の内1丁目', 'よろしくお願いします'],
    ['김민준', '서울특별시 중구 세종대로 110', '문 앞에 놓아 주세요'],
    ['محمد عبد الله', 'شارع الملك فهد، الرياض', 'شكرا جزيلا'],
  ];
  const body = {
    customers: people.map(([name, address, note], i) => ({
      id: `C-${100 + i}`,
      name,
      address,
      note,
      locale: ['fr-FR', 'de-DE', 'es-ES', 'pl-PL', 'el-GR', 'ru-RU', 'ja-JP', 'ko-KR', 'ar-SA'][i],
    })),
  };
  const inputs = query();
  collectJson(body, ['body'], inputs);
  err(`multilingual JSON body: ${Buffer.byteLength(JSON.stringify(body))} bytes`);
  return inputs;
}

/**
 * What is new in a request, for `fresh`: every value, or only what a client of an API sends anew
 * each time (the query's and the body's values, and the query string and target holding them),
 * the names of its fields and parameters, its headers and its path recurring as from one client.
 */
type Novelty = 'every value new' | 'new values, recurring names and headers';

/** The targets `fresh` makes new for each novelty. */
const NEW_TARGETS: Record<Novelty, (target: keyof Inputs) => boolean> = {
  'every value new': () => true,
  'new values, recurring names and headers': (t) => t === 'args' || t === 'query_string' || t === 'uri',
};

/**
 * The same inputs with values made new for round `n` (a suffix that no rule cares about), so
 * the engine's inert-value cache cannot help: what a request of values never seen before costs.
 * Each value is a flat string, as the request's parsers (JSON.parse, decodeURIComponent) make them:
 * a concatenation would be a V8 cons string, flattened inside the measured inspection, which no
 * parsed request pays (about 12 KB and 20-40 µs a request of the 4 KB body).
 */
function fresh(inputs: Inputs, n: number, novelty: Novelty): Inputs {
  const out = emptyInputs();
  for (const [target, leaves] of Object.entries(inputs) as [keyof Inputs, Inputs[keyof Inputs]][]) {
    const renew = NEW_TARGETS[novelty](target);
    for (const leaf of leaves) {
      const text = renew ? (JSON.parse(JSON.stringify(`${leaf.text} r${n}`)) as string) : leaf.text;
      out[target].push({ ...leaf, text });
    }
  }
  return out;
}

function measure(
  name: string,
  base: Inputs,
  paranoiaLevel: number,
  values: Novelty | 'recurring values',
): void {
  const settings: InspectionSettings = {
    mode: 'block',
    categories: [...CATEGORIES],
    exclusions: [],
    timeoutMicros: 1_000_000,
    paranoiaLevel,
    anomalyThreshold: 5,
  };
  const round = (i: number) => (values === 'recurring values' ? base : fresh(base, i, values));
  for (let i = 0; i < 200; i++) detect(round(-1 - i), settings);
  const costs: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const inputs = round(i);
    const start = process.cpuUsage();
    const v = detect(inputs, settings);
    const used = process.cpuUsage(start);
    if (v.reject) throw new Error(`${name} was rejected: ${JSON.stringify(v.detections)}`);
    costs.push(used.user + used.system);
  }
  costs.sort((a, b) => a - b);
  const at = (q: number) => costs[Math.min(costs.length - 1, Math.floor(q * costs.length))];
  out(`| ${name} | ${values} | PL${paranoiaLevel} | ${at(0.5)} µs | ${at(0.99)} µs |`);
}

/**
 * The machine's own noise, measured the same way: a loop of fixed work (no allocation, no
 * branches that depend on data) sized to take about `micros` of CPU time at its p50. Whatever
 * spread its p99 shows over its p50 (preemption, the host's other tenants, frequency changes) is in
 * the rows above too, so a row's p99 reads against it.
 */
function fixedWork(micros: number): void {
  const data = new Float64Array(4096).map((_, i) => (i % 7) + 0.5);
  let sink = 0;
  const work = (rounds: number) => {
    for (let r = 0; r < rounds; r++) for (let i = 0; i < data.length; i++) sink += (data[i] as number) * r;
  };
  const cpu = (rounds: number) => {
    const start = process.cpuUsage();
    work(rounds);
    const used = process.cpuUsage(start);
    return used.user + used.system;
  };
  for (let i = 0; i < 200; i++) work(4);
  let rounds = 4;
  while (cpu(rounds) < micros / 2) rounds *= 2;
  rounds = Math.max(1, Math.round((rounds * micros) / cpu(rounds)));
  const costs = Array.from({ length: ROUNDS }, () => cpu(rounds)).sort((a, b) => a - b);
  const at = (q: number) => costs[Math.min(costs.length - 1, Math.floor(q * costs.length))];
  out(`| fixed work (the machine's noise) | - | - | ${at(0.5)} µs | ${at(0.99)} µs |`);
  if (sink < 0) err('unreachable: keeps the work from being optimised away');
}

out('| request | values | level | p50 CPU | p99 CPU |');
out('| --- | --- | --- | --- | --- |');
fixedWork(200);
for (const pl of [1, 2]) {
  for (const values of [
    'every value new',
    'new values, recurring names and headers',
    'recurring values',
  ] as const) {
    measure('200-byte query', query(), pl, values);
    measure('4 KB JSON body', json4k(), pl, values);
    measure('multilingual JSON body', jsonWorld(), pl, values);
  }
}
