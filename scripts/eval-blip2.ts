/**
 * Evaluates a BLIP-2 folder (family "blip2") through its ONNX graphs, by the service's own BLIP-2
 * engine, on the evaluation set of `tools/make_evalset.py` (as scripts/eval-model.ts does for
 * BLIP), and writes EVAL.md and eval.json into the model folder.
 *
 *   npm run eval:blip2 -- [--model models/blip2-scenes] [--set .cache/evalset] [--out DIR] [--limit N]
 *
 * Exact match of the generated answer (greedy, the manifest's settings) on every question of the
 * set's captioned images (the scene grammar's question types, docs/scenes.md), overall and on images
 * that hold a held-out combination; and on two forms BLIP's VQA head never had, answered from each
 * image's scene (tools/blip2/scenes_data.py): "describe the picture" (the canonical caption) and
 * "where is the {colour} {shape}?" ("on the left", "on the right" or "in the middle").
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createBlip2Engine } from '../src/ml/blip2/onnx-blip2-engine.js';

interface SceneObject { shape: string; color: string; size: string; hpos: string | null }
interface EvalSet {
  seed: number;
  gallery: Array<{ id: number; file: string; heldOut: boolean; caption: string; scene: { background: string; objects: SceneObject[] } }>;
  items: Array<{ id: number; heldOut: boolean; caption: string; questions: Array<{ type: string; question: string; answer: string }> }>;
}

const { values: args } = parseArgs({
  options: {
    model: { type: 'string', default: 'models/blip2-scenes' },
    set: { type: 'string', default: '.cache/evalset' },
    out: { type: 'string' },
    limit: { type: 'string' },
  },
});

const NEW_TYPES = new Set(['describe', 'where']);
const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);
const r4 = (x: number) => Math.round(x * 10000) / 10000;

/** The new question forms for one image, answered from its scene (tools/blip2/scenes_data.py new_questions). */
function newQuestions(caption: string, objects: SceneObject[]): Array<{ type: string; question: string; answer: string }> {
  const out = [{ type: 'describe', question: 'describe the picture', answer: caption }];
  for (const o of objects) {
    if (objects.filter((x) => x.color === o.color && x.shape === o.shape).length !== 1) continue;
    const answer = o.hpos === 'left' ? 'on the left' : o.hpos === 'right' ? 'on the right' : 'in the middle';
    out.push({ type: 'where', question: `where is the ${o.color} ${o.shape}?`, answer });
  }
  return out;
}

async function main() {
  const set: EvalSet = JSON.parse(await readFile(join(args.set!, 'evalset.json'), 'utf8'));
  const engine = await createBlip2Engine({ modelDir: args.model!, workers: 1 });
  const byId = new Map(set.gallery.map((g) => [g.id, g]));
  const items = args.limit ? set.items.slice(0, Number(args.limit)) : set.items;
  const t0 = Date.now();
  const scores = { grammar: { all: [] as number[], held: [] as number[] }, added: { all: [] as number[], held: [] as number[] } };
  const perType = new Map<string, number[]>();
  const misses: string[] = [];
  await Promise.all(
    items.map(async (it) => {
      const g = byId.get(it.id)!;
      const img = await engine.loadImage(await readFile(join(args.set!, g.file)));
      for (const q of [...it.questions, ...newQuestions(g.caption, g.scene.objects)]) {
        const answer = await engine.answer(img, q.question);
        const ok = answer === q.answer ? 1 : 0;
        const group = NEW_TYPES.has(q.type) ? scores.added : scores.grammar;
        group.all.push(ok);
        if (it.heldOut) group.held.push(ok);
        perType.set(q.type, [...(perType.get(q.type) ?? []), ok]);
        if (!ok && misses.length < 15) misses.push(`| ${q.question} | ${q.answer} | ${answer} |`);
      }
    }),
  );
  const seconds = (Date.now() - t0) / 1000;
  await engine.close();
  const manifest = JSON.parse(await readFile(join(args.model!, 'manifest.json'), 'utf8'));
  const pair = (p: { all: number[]; held: number[] }) => ({ overall: r4(mean(p.all)), held_out: r4(mean(p.held)), n: p.all.length, n_held_out: p.held.length });
  const result = {
    modelId: manifest.modelId,
    evalSet: { seed: set.seed, images: items.length, heldOutImages: items.filter((i) => i.heldOut).length },
    vqa_exact_match: pair(scores.grammar),
    new_forms_exact_match: pair(scores.added),
    per_type: Object.fromEntries([...perType].sort().map(([k, v]) => [k, { exact_match: r4(mean(v)), n: v.length }])),
    seconds: Math.round(seconds),
  };
  const outDir = args.out ?? args.model!;
  await mkdir(outDir, { recursive: true });
  await writeFile(join(outDir, 'eval.json'), JSON.stringify(result, null, 2) + '\n');
  const g = result.vqa_exact_match;
  const a = result.new_forms_exact_match;
  const md = `# Evaluation of ${manifest.modelId}

Computed through the ONNX graphs by the service's BLIP-2 engine (\`npm run eval:blip2\`): greedy
answers after \`Question: {q} Answer:\`, compared exactly with the truth. The set is
\`tools/make_evalset.py --seed ${set.seed}\` (the one models/blip-scenes is evaluated on): ${items.length} images,
${result.evalSet.heldOutImages} of them holding a held-out combination (purple triangles, large orange stars, yellow on
white), which training never draws.

| questions | overall | held-out combinations | n (held out) | target |
|---|---|---|---|---|
| the scene grammar's question types (docs/scenes.md) | ${g.overall} | ${g.held_out} | ${g.n} (${g.n_held_out}) | >= 0.9 |
| new forms: "describe the picture", "where is the ...?" | ${a.overall} | ${a.held_out} | ${a.n} (${a.n_held_out}) | |

## Per question type

| type | exact match | n |
|---|---|---|
${Object.entries(result.per_type).map(([k, v]) => `| ${k}${NEW_TYPES.has(k) ? ' (new form)' : ''} | ${v.exact_match} | ${v.n} |`).join('\n')}

## Examples of misses

| question | truth | answer |
|---|---|---|
${misses.join('\n')}

Took ${Math.round(seconds)} s on this machine (2 shared cores).
`;
  await writeFile(join(outDir, 'EVAL.md'), md);
  console.log(JSON.stringify(result, null, 2));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
