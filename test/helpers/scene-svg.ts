import sharp from 'sharp';

/** scenes.md colours and backgrounds (centre values). */
export const SCENE_COLOURS = {
  red: [220, 40, 40],
  green: [40, 170, 60],
  blue: [40, 80, 220],
  yellow: [235, 210, 40],
  purple: [140, 60, 180],
  orange: [245, 140, 30],
} as const;
export const SCENE_BACKGROUNDS = { white: [245, 245, 245], gray: [128, 128, 128], black: [20, 20, 20] } as const;

export interface SceneObject {
  shape: 'circle' | 'square' | 'triangle' | 'star';
  colour: keyof typeof SCENE_COLOURS;
  size: 'small' | 'large';
  /** Centre, in pixels of the 128 x 128 canvas. */
  x: number;
  y: number;
}

export const rgb = (c: readonly number[]) => `rgb(${c.join(',')})`;

/**
 * One filled shape as SVG: centre (cx, cy), outer radius r (half the side for squares), rotation
 * in degrees, apex up for triangles and stars, star inner radius 0.45 of the outer (scenes.md).
 * Shared by these test scenes and scripts/render-evalset-svg.ts (the second renderer of the eval).
 */
export function objectSvg(o: { shape: SceneObject['shape']; cx: number; cy: number; r: number; rot: number; fill: string }): string {
  const { cx, cy, r, fill } = o;
  const polygon = (radii: number[]) => {
    const step = 360 / radii.length;
    const pts = radii.map((rr, i) => {
      const t = ((i * step - 90 + o.rot) * Math.PI) / 180;
      return `${(cx + rr * Math.cos(t)).toFixed(1)},${(cy + rr * Math.sin(t)).toFixed(1)}`;
    });
    return `<polygon points="${pts.join(' ')}" fill="${fill}"/>`;
  };
  switch (o.shape) {
    case 'circle':
      return `<circle cx="${cx}" cy="${cy}" r="${r}" fill="${fill}"/>`;
    case 'square':
      return `<rect x="${cx - r}" y="${cy - r}" width="${2 * r}" height="${2 * r}" fill="${fill}" transform="rotate(${o.rot} ${cx} ${cy})"/>`;
    case 'triangle':
      return polygon([r, r, r]);
    case 'star':
      return polygon(Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? r : r * 0.45)));
  }
}

function shapeSvg(o: SceneObject): string {
  const r = o.size === 'small' ? 16 : 30; // 12.5% / 23% of the side, inside scenes.md's ranges
  return objectSvg({ shape: o.shape, cx: o.x, cy: o.y, r, rot: o.shape === 'square' ? 6 : 0, fill: rgb(SCENE_COLOURS[o.colour]) });
}

/** Renders a scene that follows docs/scenes.md as a 128 x 128 PNG. */
export async function renderScene(background: keyof typeof SCENE_BACKGROUNDS, objects: SceneObject[]): Promise<Buffer> {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="128" height="128"><rect width="128" height="128" fill="${rgb(SCENE_BACKGROUNDS[background])}"/>${objects.map(shapeSvg).join('')}</svg>`;
  return sharp(Buffer.from(svg)).png().toBuffer();
}
