/**
 * Redraws an evaluation set with a second, independent renderer: SVG rasterised by librsvg through
 * sharp, from each gallery image's scene description (shapes, colours, sizes, centres, radii,
 * rotations), following docs/scenes.md but sharing no drawing code with tools/blip/scenes.py.
 * docs/scenes.md warns that evaluation may use another renderer of the same grammar; this measures
 * how much of the model's quality survives a change of renderer.
 *
 *   npx tsx scripts/render-evalset-svg.ts [--set .cache/evalset] [--out .cache/evalset-svg]
 *   npm run eval -- --set .cache/evalset-svg --out .cache/eval-svg
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
// The scene SVG shapes and colour table the tests draw with (dev tooling shares it; the service does not).
import { objectSvg, SCENE_BACKGROUNDS, SCENE_COLOURS } from '../test/helpers/scene-svg.js';

const { values: args } = parseArgs({
  options: {
    set: { type: 'string', default: '.cache/evalset' },
    out: { type: 'string', default: '.cache/evalset-svg' },
    seed: { type: 'string', default: '7' },
  },
});

interface SceneObject { shape: 'circle' | 'square' | 'triangle' | 'star'; color: keyof typeof SCENE_COLOURS; cx: number; cy: number; r: number; rot: number }
interface Scene { background: keyof typeof SCENE_BACKGROUNDS; objects: SceneObject[] }

/** mulberry32: a small seeded PRNG, so the redrawn set is reproducible. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function jitter(rgb: readonly number[], amount: number, rand: () => number): string {
  const c = rgb.map((v) => Math.max(0, Math.min(255, Math.round(v + (rand() * 2 - 1) * amount))));
  return `rgb(${c.join(',')})`;
}

async function main() {
  const set = JSON.parse(await readFile(join(args.set!, 'evalset.json'), 'utf8'));
  const rand = prng(Number(args.seed));
  await mkdir(join(args.out!, 'images'), { recursive: true });
  for (const g of set.gallery as Array<{ file: string; scene: Scene }>) {
    const W = [128, 128, 160, 224][Math.floor(rand() * 4)]!;
    const bg = jitter(SCENE_BACKGROUNDS[g.scene.background], 12, rand);
    const body = g.scene.objects
      .map((o) => objectSvg({ shape: o.shape, cx: o.cx * W, cy: o.cy * W, r: o.r * W, rot: o.rot, fill: jitter(SCENE_COLOURS[o.color], 20, rand) }))
      .join('');
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${W}"><rect width="${W}" height="${W}" fill="${bg}"/>${body}</svg>`;
    g.file = g.file.replace(/\.\w+$/, '.png');
    await writeFile(join(args.out!, g.file), await sharp(Buffer.from(svg)).png().toBuffer());
  }
  set.renderer = 'by a second renderer: SVG rasterised by librsvg through sharp (scripts/render-evalset-svg.ts), canvases of 128, 160 or 224 px, no blur or JPEG';
  await writeFile(join(args.out!, 'evalset.json'), JSON.stringify(set));
  console.log(`redrew ${set.gallery.length} images into ${args.out}`);
}

await main();
