/**
 * Evaluates a model folder through its ONNX graphs (the service's own inference layer), on an
 * evaluation set made by `tools/make_evalset.py`, and writes EVAL.md and eval.json into the model
 * folder.
 *
 *   npm run eval -- [--model models/blip-scenes] [--set .cache/evalset] [--candidates 128] [--out DIR]
 *                    [--fusion logit|logodds|itm] [--retrieval-only]
 *
 * Metrics (each overall and on held-out combinations):
 * - precision@10 of partial-description queries over the gallery, ITC alone and ITC + ITM
 *   re-ranking (BLIP's score: ITM match logit + ITC cosine); the denominator is min(10, #relevant);
 * - R@1 of full captions as queries (top image satisfies the whole description);
 * - caption accuracy: every object's size, colour and shape and the background right;
 * - VQA exact match, per question type.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { FALLBACK_SEARCH_CANDIDATES } from '../src/services/search.service.js';
import { createBlipEngine } from '../src/ml/create-blip-engine.js';
import type { ImageEncoding } from '../src/ml/blip-engine.js';

interface EvalSet {
  seed: number;
  /** How the images were drawn, when not by tools/make_evalset.py's own renderer. */
  renderer?: string;
  gallery: Array<{ id: number; file: string; heldOut: boolean; caption: string; scene: unknown }>;
  queries: Array<{ text: string; relevant: number[]; heldOut: boolean; combination?: string }>;
  items: Array<{ id: number; heldOut: boolean; caption: string; questions: Array<{ type: string; question: string; answer: string }> }>;
}

const { values: args } = parseArgs({
  options: {
    model: { type: 'string', default: 'models/blip-scenes' },
    set: { type: 'string', default: '.cache/evalset' },
    candidates: { type: 'string' }, // default: the model's manifest (search.defaultCandidates), as the service
    limit: { type: 'string' },
    // How the ITM head's two logits join the ITC cosine when re-ranking (dev-set experiments; the
    // service's own rule is 'logit').
    fusion: { type: 'string', default: 'logit' },
    'retrieval-only': { type: 'boolean', default: false },
    // Where EVAL.md and eval.json go (default: the model folder).
    out: { type: 'string' },
    // A folder already evaluated (its eval.json), e.g. this model's int8 copy: EVAL.md compares it.
    compare: { type: 'string' },
  },
});

const OBJ = /\b(?:a|an) (small|large) (red|green|blue|yellow|purple|orange) (circle|square|triangle|star)\b/g;
const BG = /on a (white|gray|black) background/;

/** Objects and background named by a caption, as a canonical sorted key. */
function captionKey(text: string): { objects: string; background: string | null; ordered: string } {
  const objs = [...text.matchAll(OBJ)].map((m) => `${m[1]} ${m[2]} ${m[3]}`);
  return { objects: [...objs].sort().join('|'), ordered: objs.join('|'), background: BG.exec(text)?.[1] ?? null };
}

function dot(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

/** Precision@10 of a ranking; the denominator is min(10, #relevant). */
const precisionAt10 = (ranked: number[], relevant: Set<number>) =>
  ranked.slice(0, 10).filter((id) => relevant.has(id)).length / Math.min(10, relevant.size);

const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);
const r4 = (x: number) => Math.round(x * 10000) / 10000;

async function main() {
  const set: EvalSet = JSON.parse(await readFile(join(args.set!, 'evalset.json'), 'utf8'));
  const engine = await createBlipEngine({ modelDir: args.model! });
  const K = Number(args.candidates ?? engine.defaultSearchCandidates ?? FALLBACK_SEARCH_CANDIDATES);
  const t0 = Date.now();
  const gallery = args.limit ? set.gallery.slice(0, Number(args.limit)) : set.gallery;
  const enc = new Map<number, ImageEncoding>();
  const loaded = new Map<number, Awaited<ReturnType<typeof engine.loadImage>>>();
  await Promise.all(
    gallery.map(async (g) => {
      const img = await engine.loadImage(await readFile(join(args.set!, g.file)));
      loaded.set(g.id, img);
      enc.set(g.id, await engine.embedImage(img));
    }),
  );
  console.log(`embedded ${gallery.length} images in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  const ids = gallery.map((g) => g.id);
  const inGallery = new Set(ids);

  // Shallower re-ranking depths are read off the same ITM scores (the first d of the K candidates),
  // so eval.json shows what a lower SEARCH_CANDIDATES would give at no extra inference.
  const depths = [...new Set([16, 32, 50, K].filter((d) => d <= K))].sort((a, b) => a - b);

  async function rank(text: string): Promise<{ itc: number[]; itm: number[]; byDepth: Map<number, number[]> }> {
    const q = await engine.embedText(text);
    const scored = ids.map((id) => ({ id, s: dot(q, enc.get(id)!.feature) })).sort((a, b) => b.s - a.s);
    const cand = scored.slice(0, K);
    const itm = await engine.itmScores(text, cand.map((c) => enc.get(c.id)!.itmStates));
    const fuse = (l: number[], cos: number) =>
      args.fusion === 'logodds' ? l[1]! - l[0]! + cos : args.fusion === 'itm' ? l[1]! - l[0]! : l[1]! + cos;
    const fused = cand.map((c, i) => ({ id: c.id, s: fuse(itm.logits[i]!, c.s) }));
    const byDepth = new Map(depths.map((d) => [d, [...fused.slice(0, d)].sort((a, b) => b.s - a.s).map((x) => x.id)]));
    return { itc: scored.map((x) => x.id), itm: byDepth.get(K)!, byDepth };
  }

  const pAt10 = { itc: { all: [] as number[], held: [] as number[] }, itm: { all: [] as number[], held: [] as number[] } };
  const queryRows: string[] = [];
  // held-out precision@10 (re-ranked) per held-out combination: the sets name it on each such query
  const byCombination = new Map<string, number[]>();
  const atDepth = new Map(depths.map((d) => [d, { all: [] as number[], held: [] as number[] }]));
  for (const q of set.queries) {
    const rel = new Set(q.relevant.filter((id) => inGallery.has(id)));
    if (rel.size === 0) continue;
    const r = await rank(q.text);
    for (const [d, ranked] of r.byDepth) {
      const p = precisionAt10(ranked, rel);
      atDepth.get(d)!.all.push(p);
      if (q.heldOut) atDepth.get(d)!.held.push(p);
    }
    for (const mode of ['itc', 'itm'] as const) {
      const p = precisionAt10(r[mode], rel);
      pAt10[mode].all.push(p);
      if (q.heldOut) pAt10[mode].held.push(p);
      if (mode === 'itm' && q.heldOut && q.combination) {
        byCombination.set(q.combination, [...(byCombination.get(q.combination) ?? []), p]);
      }
      if (mode === 'itm' && p < 1 && queryRows.length < 15) queryRows.push(`| ${q.text} | ${rel.size} | ${p.toFixed(1)} |`);
    }
  }
  console.log(`queries done (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  if (args['retrieval-only']) {
    const m = (xs: number[]) => r4(mean(xs));
    console.log(JSON.stringify({ candidates: K, fusion: args.fusion, itm: [m(pAt10.itm.all), m(pAt10.itm.held)], itc: [m(pAt10.itc.all), m(pAt10.itc.held)],
      byCombination: Object.fromEntries([...byCombination].map(([k, v]) => [k, m(v)])),
      byDepth: Object.fromEntries([...atDepth].map(([d, v]) => [d, [m(v.all), m(v.held)]])) }));
    await engine.close();
    return;
  }

  // R@1 of full captions: the top image must satisfy the whole caption (same objects + background)
  const keyOf = new Map(gallery.map((g) => [g.id, captionKey(g.caption)]));
  const r1 = { itc: { all: [] as number[], held: [] as number[] }, itm: { all: [] as number[], held: [] as number[] } };
  const capItems = set.items.filter((it) => inGallery.has(it.id));
  for (const it of capItems) {
    const r = await rank(it.caption);
    const want = captionKey(it.caption);
    for (const mode of ['itc', 'itm'] as const) {
      const top = keyOf.get(r[mode][0]!)!;
      const ok = top.objects === want.objects && top.background === want.background ? 1 : 0;
      r1[mode].all.push(ok);
      if (it.heldOut) r1[mode].held.push(ok);
    }
  }

  const capAcc = { all: [] as number[], held: [] as number[], ordered: [] as number[] };
  const vqa = { all: [] as number[], held: [] as number[] };
  const perType = new Map<string, number[]>();
  const badCaptions: string[] = [];
  const badAnswers: string[] = [];
  await Promise.all(
    capItems.map(async (it) => {
      const img = loaded.get(it.id)!;
      const text = await engine.caption(img);
      const got = captionKey(text);
      const want = captionKey(it.caption);
      const ok = got.objects === want.objects && got.background === want.background ? 1 : 0;
      capAcc.all.push(ok);
      capAcc.ordered.push(got.ordered === want.ordered && got.background === want.background ? 1 : 0);
      if (it.heldOut) capAcc.held.push(ok);
      if (!ok && badCaptions.length < 10) badCaptions.push(`| ${it.caption} | ${text} |`);
      for (const q of it.questions) {
        const answer = (await engine.answer(img, q.question)).trim();
        const ok2 = answer === q.answer ? 1 : 0;
        vqa.all.push(ok2);
        if (it.heldOut) vqa.held.push(ok2);
        perType.set(q.type, [...(perType.get(q.type) ?? []), ok2]);
        if (!ok2 && badAnswers.length < 10) badAnswers.push(`| ${q.question} | ${q.answer} | ${answer} |`);
      }
    }),
  );
  const seconds = (Date.now() - t0) / 1000;
  await engine.close();

  const manifest = JSON.parse(await readFile(join(args.model!, 'manifest.json'), 'utf8'));
  const result = {
    modelId: manifest.modelId,
    evalSet: { seed: set.seed, renderer: set.renderer ?? 'tools/blip/scenes.py render_augmented', gallery: gallery.length, queries: pAt10.itm.all.length, heldOutQueries: pAt10.itm.held.length, captioned: capItems.length, heldOutImages: capAcc.held.length, questions: vqa.all.length },
    precision_at_10: { overall: r4(mean(pAt10.itm.all)), held_out: r4(mean(pAt10.itm.held)), itc_only: { overall: r4(mean(pAt10.itc.all)), held_out: r4(mean(pAt10.itc.held)) }, rerank_candidates: K,
      by_rerank_depth: Object.fromEntries([...atDepth].map(([d, v]) => [d, { overall: r4(mean(v.all)), held_out: r4(mean(v.held)) }])),
      held_out_by_combination: Object.fromEntries([...byCombination].sort().map(([k, v]) => [k, { precision_at_10: r4(mean(v)), queries: v.length }])) },
    caption_recall_at_1: { overall: r4(mean(r1.itm.all)), held_out: r4(mean(r1.itm.held)), itc_only: { overall: r4(mean(r1.itc.all)), held_out: r4(mean(r1.itc.held)) } },
    caption_accuracy: { overall: r4(mean(capAcc.all)), held_out: r4(mean(capAcc.held)), in_canonical_order: r4(mean(capAcc.ordered)) },
    vqa_accuracy: { overall: r4(mean(vqa.all)), held_out: r4(mean(vqa.held)), per_type: Object.fromEntries([...perType].sort().map(([k, v]) => [k, { accuracy: r4(mean(v)), n: v.length }])) },
    seconds: Math.round(seconds),
  };
  const outDir = args.out ?? args.model!;
  await mkdir(outDir, { recursive: true });
  await writeFile(join(outDir, 'eval.json'), JSON.stringify(result, null, 2) + '\n');
  const md = `# Evaluation of ${manifest.modelId}

Computed through the ONNX graphs by the service's own inference layer (\`npm run eval\`), on a set
drawn by \`tools/make_evalset.py --seed ${set.seed}\` (training draws its scenes with other seeds and never draws the held-out
combinations: purple triangles, large orange stars, yellow objects on white). Images are rendered
${set.renderer ?? 'with the augmenting renderer (other canvas sizes, aliased or not, blur, small rotations, JPEG)'}.

| metric | overall | held-out combinations | target |
|---|---|---|---|
| text-to-image precision@10, ITC + ITM re-ranking (top ${K}) | ${result.precision_at_10.overall} | ${result.precision_at_10.held_out} | >= 0.9 |
| text-to-image precision@10, ITC alone | ${result.precision_at_10.itc_only.overall} | ${result.precision_at_10.itc_only.held_out} | |
| gain of ITM re-ranking | ${r4(result.precision_at_10.overall - result.precision_at_10.itc_only.overall)} | ${r4(result.precision_at_10.held_out - result.precision_at_10.itc_only.held_out)} | |
| R@1 of full captions, ITC + ITM | ${result.caption_recall_at_1.overall} | ${result.caption_recall_at_1.held_out} | |
| R@1 of full captions, ITC alone | ${result.caption_recall_at_1.itc_only.overall} | ${result.caption_recall_at_1.itc_only.held_out} | |
| caption accuracy (beam 3; every size, colour, shape and the background) | ${result.caption_accuracy.overall} | ${result.caption_accuracy.held_out} | >= 0.85 |
| VQA exact match | ${result.vqa_accuracy.overall} | ${result.vqa_accuracy.held_out} | >= 0.9 |

Gallery ${gallery.length} images (${result.evalSet.heldOutImages} of the ${capItems.length} captioned ones hold a held-out combination);
${result.evalSet.queries} partial-description queries (${result.evalSet.heldOutQueries} name a held-out combination);
precision@10 divides by min(10, number of relevant images). Held-out precision@10 (re-ranked) per
combination: ${Object.entries(result.precision_at_10.held_out_by_combination).map(([k, v]) => `${k} ${v.precision_at_10} (${v.queries} queries)`).join(', ') || 'not recorded by this set'}. Captions in canonical left-to-right
order: ${result.caption_accuracy.in_canonical_order}.

Re-ranking depth (\`SEARCH_CANDIDATES\`, or a search's \`candidates\`), precision@10 overall / held out:
${Object.entries(result.precision_at_10.by_rerank_depth).map(([d, v]) => `top ${d}: ${v.overall} / ${v.held_out}`).join('; ')}.

## VQA per question type

| type | exact match | n |
|---|---|---|
${Object.entries(result.vqa_accuracy.per_type).map(([k, v]) => `| ${k} | ${v.accuracy} | ${v.n} |`).join('\n')}

## Examples of misses

Queries below precision 1 (after re-ranking):

| query | relevant | p@10 |
|---|---|---|
${queryRows.join('\n')}

Captions:

| truth | generated |
|---|---|
${badCaptions.join('\n')}

Answers:

| question | truth | answer |
|---|---|---|
${badAnswers.join('\n')}

Took ${Math.round(seconds)} s on this machine (2 cores).
`;
  await writeFile(join(outDir, 'EVAL.md'), args.compare ? md + (await comparison(result, args.compare)) : md);
  console.log(JSON.stringify(result, null, 2));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

/** A section comparing another evaluated folder (an int8 copy) with this one, metric by metric. */
async function comparison(base: { modelId: string; precision_at_10: Pair; caption_accuracy: Pair; vqa_accuracy: Pair }, dir: string): Promise<string> {
  const other = JSON.parse(await readFile(join(dir, 'eval.json'), 'utf8')) as typeof base & { modelId: string };
  const manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as { quantization?: { fp32Graphs?: string[] } };
  const d = (a: number, b: number) => `${b - a >= 0 ? '+' : ''}${(b - a).toFixed(4)}`;
  const row = (name: string, a: Pair, b: Pair) => `| ${name} | ${b.overall} (${d(a.overall, b.overall)}) | ${b.held_out} (${d(a.held_out, b.held_out)}) |`;
  const fp32 = manifest.quantization?.fp32Graphs?.length ? ` Graphs kept in float32: ${manifest.quantization.fp32Graphs.join(', ')}.` : ' Every graph runs on int8 weights.';
  return `
## Int8 copy

\`tools/quantize.py\` on this folder gives ${other.modelId}, evaluated the same way on the same set
(difference from float32 in brackets).${fp32}

| metric | overall | held-out combinations |
|---|---|---|
${row('text-to-image precision@10, ITC + ITM', base.precision_at_10, other.precision_at_10)}
${row('caption accuracy', base.caption_accuracy, other.caption_accuracy)}
${row('VQA exact match', base.vqa_accuracy, other.vqa_accuracy)}
`;
}

interface Pair { overall: number; held_out: number }
