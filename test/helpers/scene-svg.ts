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

const rgb = (c: readonly number[]) => `rgb(${c.join(',')})`;

function shapeSvg(o: SceneObject): string {
  const r = o.size === 'small' ? 16 : 30; // 12.5% / 23% of the side, inside scenes.md's ranges
  const fill = rgb(SCENE_COLOURS[o.colour]);
  switch (o.shape) {
    case 'circle':
      return `<circle cx="${o.x}" cy="${o.y}" r="${r}" fill="${fill}"/>`;
    case 'square':
      return `<rect x="${o.x - r}" y="${o.y - r}" width="${2 * r}" height="${2 * r}" fill="${fill}" transform="rotate(6 ${o.x} ${o.y})"/>`;
    case 'triangle': {
      const pts = [0, 120, 240].map((a) => {
        const t = ((a - 90) * Math.PI) / 180;
        return `${(o.x + r * Math.cos(t)).toFixed(1)},${(o.y + r * Math.sin(t)).toFixed(1)}`;
      });
      return `<polygon points="${pts.join(' ')}" fill="${fill}"/>`;
    }
    case 'star': {
      const pts = Array.from({ length: 10 }, (_, i) => {
        const rr = i % 2 === 0 ? r : r * 0.45;
        const t = ((i * 36 - 90) * Math.PI) / 180;
        return `${(o.x + rr * Math.cos(t)).toFixed(1)},${(o.y + rr * Math.sin(t)).toFixed(1)}`;
      });
      return `<polygon points="${pts.join(' ')}" fill="${fill}"/>`;
    }
  }
}

/** Renders a scene that follows ../shared/scenes.md as a 128 x 128 PNG. */
export async function renderScene(background: keyof typeof SCENE_BACKGROUNDS, objects: SceneObject[]): Promise<Buffer> {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="128" height="128"><rect width="128" height="128" fill="${rgb(SCENE_BACKGROUNDS[background])}"/>${objects.map(shapeSvg).join('')}</svg>`;
  return sharp(Buffer.from(svg)).png().toBuffer();
}
