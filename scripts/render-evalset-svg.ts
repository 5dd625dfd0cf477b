/**
 * Redraws an evaluation set with a second, independent renderer: SVG rasterised by librsvg through
 * sharp, from each gallery image's scene description (shapes, colours, sizes, centres, radii,
 * rotations), following shared/scenes.md but sharing no drawing code with tools/blip/scenes.py.
 * scenes.md warns that evaluation may use another renderer of the same grammar; this measures
 * how much of the model's quality survives a change of renderer.
 *
 *   npx tsx scripts/render-evalset-svg.ts [--set .cache/evalset] [--out .cache/evalset-svg]
 *   npm run eval -- --set .cache/evalset-svg --out .cache/eval-svg
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';

const { values: args } = parseArgs({
  options: {
    set: { type: 'string', default: '.cache/evalset' },
    out: { type: 'string', default: '.cache/evalset-svg' },
    seed: { type: 'string', default: '7' },
  },
});

// Nominal colours of scenes.md (objects vary by up to +-20 per channel, backgrounds by +-12).
const COLOURS: Record<string, [number, number, number]> = {
  red: [220, 40, 40], green: [40, 170, 60], blue: [40, 80, 220], yellow: [235, 210, 40], purple: [140, 60, 180], orange: [245, 140, 30],
};
const BACKGROUNDS: Record<string, [number, number, number]> = { white: [245, 245, 245], gray: [128, 128, 128], black: [20, 20, 20] };

interface SceneObject { shape: string; color: string; cx: number; cy: number; r: number; rot: number }
interface Scene { background: string; objects: SceneObject[] }

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

function jitter(rgb: [number, number, number], amount: number, rand: () => number): string {
  const c = rgb.map((v) => Math.max(0, Math.min(255, Math.round(v + (rand() * 2 - 1) * amount))));
  return `rgb(${c.join(',')})`;
}

/** One object as SVG in a W x W canvas: shapes drawn around the origin, then rotated and moved. */
function shapeSvg(o: SceneObject, W: number, fill: string): string {
  const r = o.r * W;
  const place = `transform="translate(${(o.cx * W).toFixed(2)} ${(o.cy * W).toFixed(2)}) rotate(${o.rot.toFixed(2)})"`;
  if (o.shape === 'circle') return `<circle r="${r.toFixed(2)}" fill="${fill}" ${place}/>`;
  if (o.shape === 'square') return `<rect x="${-r}" y="${-r}" width="${2 * r}" height="${2 * r}" fill="${fill}" ${place}/>`;
  const points: Array<[number, number]> = [];
  if (o.shape === 'triangle') {
    for (const deg of [90, 210, 330]) points.push([r * Math.cos((deg * Math.PI) / 180), -r * Math.sin((deg * Math.PI) / 180)]);
  } else {
    for (let k = 0; k < 10; k++) {
      const rad = k % 2 === 0 ? r : 0.45 * r;
      const a = ((90 + 36 * k) * Math.PI) / 180;
      points.push([rad * Math.cos(a), -rad * Math.sin(a)]);
    }
  }
  return `<polygon points="${points.map(([x, y]) => `${x.toFixed(2)},${y.toFixed(2)}`).join(' ')}" fill="${fill}" ${place}/>`;
}

async function main() {
  const set = JSON.parse(await readFile(join(args.set!, 'evalset.json'), 'utf8'));
  const rand = prng(Number(args.seed));
  await mkdir(join(args.out!, 'images'), { recursive: true });
  for (const g of set.gallery as Array<{ file: string; scene: Scene }>) {
    const W = [128, 128, 160, 224][Math.floor(rand() * 4)]!;
    const bg = jitter(BACKGROUNDS[g.scene.background]!, 12, rand);
    const body = g.scene.objects.map((o) => shapeSvg(o, W, jitter(COLOURS[o.color]!, 20, rand))).join('');
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${W}"><rect width="${W}" height="${W}" fill="${bg}"/>${body}</svg>`;
    g.file = g.file.replace(/\.\w+$/, '.png');
    await writeFile(join(args.out!, g.file), await sharp(Buffer.from(svg)).png().toBuffer());
  }
  set.renderer = 'by a second renderer: SVG rasterised by librsvg through sharp (scripts/render-evalset-svg.ts), canvases of 128, 160 or 224 px, no blur or JPEG';
  await writeFile(join(args.out!, 'evalset.json'), JSON.stringify(set));
  console.log(`redrew ${set.gallery.length} images into ${args.out}`);
}

await main();
