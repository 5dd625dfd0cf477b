/**
 * A strict reader of the Prometheus text exposition format (version 0.0.4), for tests. Written
 * here because the npm parser (parse-prometheus-text-format) drops the labels of histograms.
 * Throws on any line the format does not allow, on samples outside their TYPE'd family, and on
 * histograms whose buckets are not cumulative or whose +Inf bucket differs from _count.
 */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  type: 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';
  help: string;
  samples: Sample[];
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const LABEL = `([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\\\\n]|\\\\[\\\\"n])*)"`;
const SAMPLE = new RegExp(`^(${NAME})(?:\\{((?:${LABEL})(?:,${LABEL})*)?,?\\})? (\\S+)(?: (-?\\d+))?$`);
const VALUE = /^(?:[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)|[+-]?Inf|NaN)$/;

export function parsePrometheusText(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const familyOf = (sampleName: string): Family | undefined => {
    for (const suffix of ['', '_bucket', '_sum', '_count']) {
      if (suffix && !sampleName.endsWith(suffix)) continue;
      const family = families.get(sampleName.slice(0, sampleName.length - suffix.length));
      if (family && (suffix === '' || family.type === 'histogram' || family.type === 'summary')) return family;
    }
    return undefined;
  };
  for (const [i, line] of text.split('\n').entries()) {
    if (line === '') continue;
    const meta = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
    if (meta) {
      const [, kind, name, rest] = meta as unknown as [string, string, string, string];
      if (!new RegExp(`^${NAME}$`).test(name)) throw new Error(`line ${i + 1}: bad metric name ${name}`);
      const family = families.get(name) ?? { name, type: 'untyped' as const, help: '', samples: [] };
      families.set(name, family);
      if (kind === 'HELP') family.help = rest;
      else if (['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(rest)) family.type = rest as Family['type'];
      else throw new Error(`line ${i + 1}: bad TYPE ${rest}`);
      continue;
    }
    if (line.startsWith('#')) continue;
    const m = SAMPLE.exec(line);
    if (!m) throw new Error(`line ${i + 1}: not a sample line: ${line}`);
    const name = m[1]!;
    const value = m[m.length - 2]!;
    if (!VALUE.test(value)) throw new Error(`line ${i + 1}: bad value ${value}`);
    const labels: Record<string, string> = {};
    for (const [, k, v] of (m[2] ?? '').matchAll(new RegExp(LABEL, 'g'))) labels[k!] = v!.replace(/\\(["\\n])/g, (_s, c: string) => (c === 'n' ? '\n' : c));
    const family = familyOf(name);
    if (!family) throw new Error(`line ${i + 1}: sample ${name} has no TYPE'd family`);
    family.samples.push({ name, labels, value: Number(value.replace(/Inf$/, 'Infinity')) });
  }
  for (const family of families.values()) if (family.type === 'histogram') checkHistogram(family);
  return families;
}

function checkHistogram(family: Family): void {
  const series = new Map<string, { buckets: Array<[number, number]>; count?: number }>();
  const key = (labels: Record<string, string>) => JSON.stringify(Object.entries(labels).filter(([k]) => k !== 'le').sort());
  for (const s of family.samples) {
    const entry = series.get(key(s.labels)) ?? { buckets: [] };
    series.set(key(s.labels), entry);
    if (s.name.endsWith('_bucket')) entry.buckets.push([Number(s.labels.le!.replace(/Inf$/, 'Infinity')), s.value]);
    else if (s.name.endsWith('_count')) entry.count = s.value;
  }
  for (const [labels, { buckets, count }] of series) {
    const sorted = [...buckets].sort((a, b) => a[0] - b[0]);
    if (sorted.some((b, i) => i > 0 && b[1] < sorted[i - 1]![1])) throw new Error(`${family.name}${labels}: buckets are not cumulative`);
    if (sorted.at(-1)?.[0] !== Infinity || sorted.at(-1)?.[1] !== count) throw new Error(`${family.name}${labels}: +Inf bucket differs from _count`);
  }
}

/** A counter's or gauge's value, or a histogram's _count, for the labels given (subset match); 0 when absent. */
export function sampleValue(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number {
  const family = families.get(name);
  if (!family) return 0;
  const wanted = family.type === 'histogram' ? `${name}_count` : name;
  const found = family.samples.filter((s) => s.name === wanted && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  return found.reduce((sum, s) => sum + s.value, 0);
}
