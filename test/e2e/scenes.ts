import sharp from 'sharp';
import { SCENE_BACKGROUNDS, SCENE_COLOURS } from '../helpers/scene-svg.js';

/**
 * Scenes as docs/scenes.md describes them (the bundled model's world), drawn with sharp from
 * SVG: a flat background and 1-3 filled shapes that do not overlap. The test knows exactly what
 * each image contains, so it can check rankings and answers against the truth.
 */
export const BACKGROUNDS = SCENE_BACKGROUNDS;
export const COLORS = SCENE_COLOURS;

export type Shape = 'circle' | 'square' | 'triangle' | 'star';
export type Color = keyof typeof COLORS;

export interface SceneObject {
  shape: Shape;
  color: Color;
  size: 'small' | 'large';
  /** Centre, as a fraction of the side. */
  cx: number;
  cy: number;
  /** Degrees; squares, triangles and stars only (at most +-15). */
  rot?: number;
}

export interface Scene {
  name: string;
  background: keyof typeof BACKGROUNDS;
  objects: SceneObject[];
}

const SIDE = 128;
/** Outer radius (half side for squares) as a fraction of the side: middle of scenes.md's ranges. */
const RADIUS = { small: 0.125, large: 0.22 } as const;

const rgb = (c: readonly number[]) => `rgb(${c.join(',')})`;

function points(o: SceneObject, r: number): Array<[number, number]> {
  if (o.shape === 'square') return [[-r, -r], [r, -r], [r, r], [-r, r]];
  if (o.shape === 'triangle') return [90, 210, 330].map((a) => [r * Math.cos((a * Math.PI) / 180), -r * Math.sin((a * Math.PI) / 180)]);
  const star: Array<[number, number]> = [];
  for (let k = 0; k < 10; k++) {
    const rad = k % 2 === 0 ? r : 0.45 * r;
    const a = ((90 + 36 * k) * Math.PI) / 180;
    star.push([rad * Math.cos(a), -rad * Math.sin(a)]);
  }
  return star;
}

function shapeSvg(o: SceneObject): string {
  const cx = o.cx * SIDE;
  const cy = o.cy * SIDE;
  const r = RADIUS[o.size] * SIDE;
  const fill = rgb(COLORS[o.color]);
  if (o.shape === 'circle') return `<circle cx="${cx}" cy="${cy}" r="${r}" fill="${fill}"/>`;
  const pts = points(o, r)
    .map(([x, y]) => `${(cx + x).toFixed(2)},${(cy + y).toFixed(2)}`)
    .join(' ');
  return `<polygon points="${pts}" fill="${fill}" transform="rotate(${o.rot ?? 0} ${cx} ${cy})"/>`;
}

/** The enclosing radius, for the no-overlap check. */
function extent(o: SceneObject): number {
  return RADIUS[o.size] * (o.shape === 'square' ? Math.SQRT2 : 1);
}

/** Throws when a scene breaks scenes.md's rules, so a typo in a fixture cannot go unnoticed. */
export function checkScene(scene: Scene): void {
  if (scene.objects.length < 1 || scene.objects.length > 3) throw new Error(`${scene.name}: 1-3 objects`);
  scene.objects.forEach((o, i) => {
    const e = extent(o);
    if (o.cx - e < 0 || o.cx + e > 1 || o.cy - e < 0 || o.cy + e > 1) throw new Error(`${scene.name}: object ${i} leaves the canvas`);
    scene.objects.slice(i + 1).forEach((p, j) => {
      if (Math.hypot(o.cx - p.cx, o.cy - p.cy) < e + extent(p) + 4 / SIDE) throw new Error(`${scene.name}: objects ${i} and ${i + 1 + j} overlap`);
    });
  });
}

export async function renderScene(scene: Scene): Promise<Buffer> {
  checkScene(scene);
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${SIDE}" height="${SIDE}" viewBox="0 0 ${SIDE} ${SIDE}">
<rect width="${SIDE}" height="${SIDE}" fill="${rgb(BACKGROUNDS[scene.background])}"/>${scene.objects.map(shapeSvg).join('')}</svg>`;
  return sharp(Buffer.from(svg)).png().toBuffer();
}

/** The canonical caption of scenes.md (objects left to right). */
export function caption(scene: Scene): string {
  const phrases = [...scene.objects].sort((a, b) => a.cx - b.cx).map((o) => `a ${o.size} ${o.color} ${o.shape}`);
  const list = phrases.length === 1 ? phrases[0] : `${phrases.slice(0, -1).join(', ')} and ${phrases.at(-1)}`;
  return `${list} on a ${scene.background} background`;
}

export const hasRedCircle = (scene: Scene) => scene.objects.some((o) => o.color === 'red' && o.shape === 'circle');

/**
 * The test's collection: three scenes with exactly one circle, which is red, and distractors with
 * red non-circles and non-red circles, so "red circle" has to get both words right.
 */
export const SCENES: Scene[] = [
  { name: 'red-circle-white', background: 'white', objects: [{ shape: 'circle', color: 'red', size: 'large', cx: 0.5, cy: 0.5 }] },
  {
    name: 'red-circle-blue-square-gray',
    background: 'gray',
    objects: [
      { shape: 'circle', color: 'red', size: 'large', cx: 0.28, cy: 0.4 },
      { shape: 'square', color: 'blue', size: 'small', cx: 0.76, cy: 0.7, rot: 8 },
    ],
  },
  {
    name: 'yellow-star-red-circle-black',
    background: 'black',
    objects: [
      { shape: 'star', color: 'yellow', size: 'small', cx: 0.22, cy: 0.25, rot: -5 },
      { shape: 'circle', color: 'red', size: 'small', cx: 0.72, cy: 0.66 },
    ],
  },
  { name: 'blue-circle-white', background: 'white', objects: [{ shape: 'circle', color: 'blue', size: 'large', cx: 0.45, cy: 0.55 }] },
  {
    name: 'red-square-green-circle-black',
    background: 'black',
    objects: [
      { shape: 'square', color: 'red', size: 'large', cx: 0.33, cy: 0.35, rot: -10 },
      { shape: 'circle', color: 'green', size: 'small', cx: 0.78, cy: 0.78 },
    ],
  },
  { name: 'red-triangle-gray', background: 'gray', objects: [{ shape: 'triangle', color: 'red', size: 'large', cx: 0.5, cy: 0.52, rot: 5 }] },
  {
    name: 'purple-square-orange-star-white',
    background: 'white',
    objects: [
      { shape: 'square', color: 'purple', size: 'small', cx: 0.25, cy: 0.7, rot: 12 },
      { shape: 'star', color: 'orange', size: 'small', cx: 0.72, cy: 0.3 },
    ],
  },
  {
    name: 'green-triangle-yellow-circle-blue-star-black',
    background: 'black',
    objects: [
      { shape: 'triangle', color: 'green', size: 'small', cx: 0.2, cy: 0.22 },
      { shape: 'circle', color: 'yellow', size: 'small', cx: 0.5, cy: 0.72 },
      { shape: 'star', color: 'blue', size: 'small', cx: 0.8, cy: 0.25, rot: 10 },
    ],
  },
  { name: 'orange-square-gray', background: 'gray', objects: [{ shape: 'square', color: 'orange', size: 'large', cx: 0.55, cy: 0.45, rot: -8 }] },
  {
    name: 'blue-triangle-purple-circle-white',
    background: 'white',
    objects: [
      { shape: 'triangle', color: 'blue', size: 'large', cx: 0.3, cy: 0.3 },
      { shape: 'circle', color: 'purple', size: 'small', cx: 0.75, cy: 0.75 },
    ],
  },
  { name: 'green-star-black', background: 'black', objects: [{ shape: 'star', color: 'green', size: 'large', cx: 0.5, cy: 0.5, rot: 6 }] },
  {
    name: 'yellow-square-red-star-gray',
    background: 'gray',
    objects: [
      { shape: 'square', color: 'yellow', size: 'small', cx: 0.22, cy: 0.5, rot: -12 },
      { shape: 'star', color: 'red', size: 'large', cx: 0.68, cy: 0.5 },
    ],
  },
  { name: 'purple-star-white', background: 'white', objects: [{ shape: 'star', color: 'purple', size: 'small', cx: 0.7, cy: 0.3 }] },
];
