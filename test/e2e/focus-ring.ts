import type { Locator, Page } from 'playwright-core';
import sharp from 'sharp';

type Rgb = [number, number, number];

/** WCAG 2.x relative luminance of an sRGB colour. */
function luminance([r, g, b]: Rgb): number {
  const lin = (c: number) => {
    const s = c / 255;
    return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
  };
  return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
}

/** WCAG contrast ratio, 1 to 21. */
export function contrast(a: Rgb, b: Rgb): number {
  const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x) as [number, number];
  return (hi + 0.05) / (lo + 0.05);
}

/** Moves the focus to `target` with the Tab key from the top of the page, as a keyboard user would. */
export async function tabTo(page: Page, target: Locator, maxPresses = 120): Promise<void> {
  const handle = await target.elementHandle();
  if (!handle) throw new Error('tabTo: no such element');
  await page.evaluate(() => (document.activeElement as HTMLElement | null)?.blur());
  for (let i = 0; i < maxPresses; i++) {
    await page.keyboard.press('Tab');
    if (await handle.evaluate((el) => el === document.activeElement)) return;
  }
  throw new Error('tabTo: the element is not reachable with Tab');
}

export interface RingMeasure {
  /** The ring's colour as painted, and the colour right outside it, from a screenshot. */
  ring: Rgb;
  around: Rgb;
  /** Lowest contrast of the two, over the left and top edges. */
  ratio: number;
  width: number;
}

/**
 * Measures the focus ring painted around `ringElement` (the focused element itself, or the one
 * that shows its focus: a switch's track, a card around its link) from the pixels on screen: the
 * middle of the ring on the left and top edges against the pixels just outside it. A ring that is
 * missing, hidden under other content or faint shows up as a low ratio.
 */
export async function measureRing(page: Page, ringElement: Locator): Promise<RingMeasure> {
  await ringElement.scrollIntoViewIfNeeded();
  await page.waitForTimeout(250); // colour transitions
  const style = await ringElement.evaluate((el) => {
    const cs = getComputedStyle(el);
    return { width: parseFloat(cs.outlineWidth) || 0, offset: parseFloat(cs.outlineOffset) || 0, style: cs.outlineStyle };
  });
  const box = (await ringElement.boundingBox())!;
  const shot = await page.screenshot();
  const { data, info } = await sharp(shot).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const pixel = (x: number, y: number): Rgb => {
    const i = (Math.round(y) * info.width + Math.round(x)) * 3;
    return [data[i]!, data[i + 1]!, data[i + 2]!];
  };
  const w = Math.max(style.width, 1);
  const out = style.offset + w / 2;
  const beyond = style.offset + w + 3;
  const samples = [
    { ring: pixel(box.x - out, box.y + box.height / 2), around: pixel(box.x - beyond, box.y + box.height / 2) },
    { ring: pixel(box.x + box.width / 2, box.y - out), around: pixel(box.x + box.width / 2, box.y - beyond) },
  ];
  const ratios = samples.map((s) => contrast(s.ring, s.around));
  const worst = ratios[0]! <= ratios[1]! ? samples[0]! : samples[1]!;
  return { ...worst, ratio: Math.min(...ratios), width: style.style === 'none' ? 0 : style.width };
}
