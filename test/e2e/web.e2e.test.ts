import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromiumAvailable, launchBrowser, CHROMIUM } from './browser.js';
import { caption, hasRedCircle, renderScene, SCENES, type Scene } from './scenes.js';
import { chooseModelDir, gql, ROOT, startService, type ServiceProcess } from './service.js';

/**
 * The web page end to end: the real service (child process, fresh data folder) serving web/dist,
 * driven in headless Chromium. With the bundled model (models/blip-scenes) it also checks meaning:
 * "red circle" ranks the red circles first and VQA answers "red". With the tiny random fixture
 * (used until the bundled model exists, or with E2E_MODEL_DIR) it checks the flow only.
 */
const ARTIFACTS = path.join(ROOT, 'test-artifacts');
const webBuilt = fs.existsSync(path.join(ROOT, 'web', 'dist', 'index.html'));
// In CI a missing browser is a failure, not a skip (scripts/install-test-deps.sh installs it).
const canRun = (chromiumAvailable() || process.env.CI === 'true') && (webBuilt || process.env.CI === 'true');
if (!canRun) console.warn(`web e2e skipped: needs ${CHROMIUM} and web/dist (npm run build:web)`);

const model = chooseModelDir();
/** expect.poll waits 1 s by default; the build machines are busy (model training shares them). */
const POLL = { timeout: 30_000, interval: 100 };

describe.skipIf(!canRun)('web page (headless Chromium)', () => {
  let service: ServiceProcess;
  let browser: Awaited<ReturnType<typeof launchBrowser>>;
  let context: BrowserContext;
  let page: Page;
  let workDir: string;
  const files: Array<{ scene: Scene; file: string; sha256: string }> = [];
  const pageErrors: string[] = [];
  let idToScene = new Map<string, Scene>();
  let openedId = '';

  beforeAll(async () => {
    expect(webBuilt, 'web/dist/index.html is missing: run npm run build:web').toBe(true);
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'blip-e2e-images-'));
    for (const scene of SCENES) {
      const png = await renderScene(scene);
      const file = path.join(workDir, `${scene.name}.png`);
      fs.writeFileSync(file, png);
      files.push({ scene, file, sha256: createHash('sha256').update(png).digest('hex') });
    }
    [service, browser] = await Promise.all([startService(model.dir), launchBrowser()]);
    context = browser.context;
    page = context.pages()[0] ?? (await context.newPage());
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    page.setDefaultTimeout(30_000);
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await service?.stop();
    if (workDir) fs.rmSync(workDir, { recursive: true, force: true });
  }, 60_000);

  it('starts empty and says so', async () => {
    await page.goto(service.url);
    await expect.poll(() => page.getByRole('heading', { name: 'No images yet' }).isVisible(), POLL).toBe(true);
    await expect.poll(() => page.locator('footer').innerText(), POLL).toContain('0 images indexed');
  });

  it('uploads several files with progress and a result for each: new, duplicate, rejected', async () => {
    await page.getByRole('button', { name: 'Upload images', expanded: false }).click();
    const multipart = page.waitForRequest((r) => r.url().endsWith('/graphql') && (r.headers()['content-type'] ?? '').startsWith('multipart/form-data'));
    const chooser = page.waitForEvent('filechooser');
    await page.getByRole('button', { name: 'Choose files' }).click();
    await (await chooser).setFiles(files.map((f) => f.file));

    // A GraphQL multipart request (the server's graphql-upload checks its operations/map/file
    // parts; Chromium does not expose file bodies to the test) with the CSRF-prevention header.
    const request = await multipart;
    expect(request.method()).toBe('POST');
    expect(request.headers()['apollo-require-preflight']).toBe('true');

    // While they upload: progress bars, then "Captioning and indexing".
    await page.locator('[data-testid="upload-item"] [role="progressbar"]').first().waitFor();
    await expect
      .poll(() => page.locator('[data-testid="upload-item"][data-status="new"]').count(), { timeout: 240_000, interval: 500 })
      .toBe(files.length);
    expect(await page.getByTestId('upload-summary').innerText()).toContain(`${files.length} added`);

    // Drag and drop: the same bytes again (a duplicate) and a text file posing as a PNG (rejected).
    const dup = fs.readFileSync(files[0]!.file).toString('base64');
    await page.evaluate(
      ({ dup }) => {
        const bytes = Uint8Array.from(atob(dup), (c) => c.charCodeAt(0));
        const dt = new DataTransfer();
        dt.items.add(new File([bytes], 'again.png', { type: 'image/png' }));
        dt.items.add(new File(['just some notes'], 'notes.png', { type: 'image/png' }));
        const target = document.querySelector('.dropzone')!;
        target.dispatchEvent(new DragEvent('dragover', { bubbles: true, cancelable: true, dataTransfer: dt }));
        target.dispatchEvent(new DragEvent('drop', { bubbles: true, cancelable: true, dataTransfer: dt }));
      },
      { dup },
    );
    const duplicate = page.locator('[data-testid="upload-item"][data-status="duplicate"]');
    const rejected = page.locator('[data-testid="upload-item"][data-status="rejected"]');
    await duplicate.waitFor({ timeout: 60_000 });
    await rejected.waitFor({ timeout: 60_000 });
    expect(await duplicate.innerText()).toContain('again.png');
    expect(await duplicate.innerText()).toContain('Already in library');
    const reason = await rejected.getByTestId('upload-error').innerText();
    expect(reason).toContain('UNSUPPORTED_IMAGE');
    expect(reason).toMatch(/not a decodable image/i);
    await page.screenshot({ path: path.join(ARTIFACTS, 'upload-panel.png') });

    // The library behind the panel now shows all of them.
    await expect.poll(() => page.getByTestId('result').count(), { timeout: 30_000 }).toBe(files.length);
    const listed = await gql<{ images: { edges: Array<{ node: { id: string; sha256: string } }> } }>(
      service.url,
      `{ images(first: 50) { edges { node { id sha256 } } } }`,
    );
    idToScene = new Map(listed.images.edges.map((e) => [e.node.id, files.find((f) => f.sha256 === e.node.sha256)!.scene]));
    expect(idToScene.size).toBe(files.length);
    await page.getByRole('button', { name: 'Close the upload panel' }).click();
  }, 300_000);

  it('searches "red circle" with the keyboard (red circles first once the model meets its targets)', async () => {
    await page.getByLabel('Describe what you are looking for').click();
    await page.keyboard.type('red circle');
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Results for “red circle”' }).waitFor();
    await page.locator('.results[aria-busy="false"] [data-testid="result"]').first().waitFor({ timeout: 120_000 });
    // Re-ranked search cards carry a match meter; waiting for it means the grid shows this search,
    // not the list it replaces (a loaded machine once let the test read the previous grid).
    await page.locator('.results[aria-busy="false"] [data-testid="result"] .meter').first().waitFor({ timeout: 120_000 });

    const cards = page.locator('[data-testid="result"]');
    const ids = await cards.evaluateAll((els) => els.map((e) => e.getAttribute('data-image-id')!));
    const captions = await cards.getByTestId('caption').allInnerTexts();
    const truth = ids.map((id) => idToScene.get(id)!);
    const redCircles = SCENES.filter(hasRedCircle).length;
    console.log(
      `model ${path.basename(model.dir)}; ranking for "red circle":\n` +
        ids.map((id, i) => `  ${i + 1}. ${captions[i]}   [truth: ${caption(truth[i]!)}]`).join('\n'),
    );
    // The scores behind that order, straight from the API (diagnosis when a ranking surprises).
    const api = await gql<{ searchImages: { edges: Array<{ itcScore: number; itmScore: number; node: { id: string } }> } }>(
      service.url, `{ searchImages(text: "red circle", first: 20) { edges { itcScore itmScore node { id } } } }`);
    console.log(api.searchImages.edges.map((e, i) => `  ${i + 1}. itc ${e.itcScore.toFixed(3)} itm ${e.itmScore.toFixed(3)}  ${caption(idToScene.get(e.node.id)!)}`).join('\n'));
    expect(ids.length).toBeGreaterThanOrEqual(redCircles);
    // Each card shows its ITM match probability and ITC score.
    expect(await cards.first().locator('.meter').innerText()).toMatch(/Match\s*\d+%/);
    expect(await cards.first().locator('.chip').innerText()).toMatch(/ITC\s*-?\d\.\d\d/);
    await page.screenshot({ path: path.join(ARTIFACTS, 'results-grid.png'), fullPage: true });

    if (model.strict) {
      // The truth: the top results are the images that contain a red circle...
      expect(truth.slice(0, redCircles).every(hasRedCircle)).toBe(true);
      // ...and the captions the page shows for them say so.
      for (const c of captions.slice(0, redCircles)) expect(c.toLowerCase()).toContain('red circle');
    }

    // Re-ranking off: ITC order, no match probability; the minimum-match slider is disabled.
    await page.getByRole('switch', { name: /Re-rank with ITM/ }).uncheck();
    await expect.poll(() => page.url(), POLL).toContain('rerank=0');
    await page.locator('.results[aria-busy="false"] [data-testid="result"]').first().waitFor({ timeout: 60_000 });
    // Poll: the re-ranked grid (with meters) stays on screen until the ITC-only one replaces it.
    await expect.poll(() => page.locator('[data-testid="result"] .meter').count(), POLL).toBe(0);
    expect(await page.getByLabel('Minimum match').isDisabled()).toBe(true);
    await page.getByRole('switch', { name: /Re-rank with ITM/ }).check();
    await expect.poll(() => page.url(), POLL).not.toContain('rerank=0');
    await expect.poll(() => page.locator('.results[aria-busy="false"] [data-testid="result"] .meter').count(), POLL).toBe(ids.length);

    // Minimum match 95%: only strong matches stay (or a clear "no matching images").
    await page.getByLabel('Minimum match').fill('0.95');
    await expect.poll(() => page.url(), POLL).toContain('min=0.95');
    // Poll until the grid is the filtered one: settled, no card below 95% (the unfiltered grid it
    // replaces has some, unless every image matches that well), and cards or the empty state.
    const filtered = async () => {
      if ((await page.locator('.results[aria-busy="false"]').count()) === 0) return false;
      const meters = await page.locator('[data-testid="result"] .meter').allInnerTexts();
      if (meters.some((t) => Number(/(\d+)%/.exec(t)?.[1] ?? 0) < 95)) return false;
      return meters.length > 0 || (await page.getByRole('heading', { name: 'No matching images' }).isVisible());
    };
    await expect.poll(filtered, POLL).toBe(true);
    const strong = await page.locator('[data-testid="result"]').count();
    expect(strong).toBeLessThanOrEqual(ids.length);
    await page.getByLabel('Minimum match').fill('0');
    await expect.poll(() => page.url(), POLL).not.toContain('min=');
    // Back to the unfiltered grid: wait for all of it, not just its first card (the filtered grid
    // still on screen has a first card too; a confident model once let the next test read it).
    await expect.poll(() => page.locator('.results[aria-busy="false"] [data-testid="result"]').count(), POLL).toBe(ids.length);
    // Open the best-ranked image that really holds a red circle, so that the question asked about
    // it ("what color is the circle?") is one the scene grammar allows.
    openedId = ids.find((id) => hasRedCircle(idToScene.get(id)!)) ?? ids[0]!;
  }, 240_000);

  it('pages with "Show more" and finds more like this', async () => {
    // 13 images, 12 per page: the second page comes from the first page's end cursor.
    const cards = page.locator('[data-testid="result"]');
    expect(await cards.count()).toBe(12);
    const more = page.getByRole('button', { name: /Show more/ });
    expect(await more.innerText()).toContain(`12 of ${files.length}`);
    await more.click();
    await expect.poll(() => cards.count(), { timeout: 60_000 }).toBe(files.length);
    expect(await more.count()).toBe(0);
    const all = await cards.evaluateAll((els) => els.map((e) => e.getAttribute('data-image-id')));
    expect(new Set(all).size).toBe(files.length);

    // Images like the first result, from its "More like this" link (the image itself excluded).
    const first = page.locator(`[data-testid="result"][data-image-id="${openedId}"]`);
    await first.getByRole('link', { name: /More like this/ }).click();
    await page.getByRole('heading', { name: 'More like this' }).waitFor();
    await page.locator('.source-chip').waitFor();
    await page.locator('.results[aria-busy="false"] [data-testid="result"]').first().waitFor({ timeout: 60_000 });
    // The similar grid replaces the search grid; poll until it has (the old one holds openedId).
    const similarIds = () => cards.evaluateAll((els) => els.map((e) => e.getAttribute('data-image-id')));
    await expect.poll(similarIds, POLL).not.toContain(openedId);
    const similar = await similarIds();
    expect(similar.length).toBe(12);
    await page.screenshot({ path: path.join(ARTIFACTS, 'similar-grid.png') });
    await page.goBack();
    await page.getByRole('heading', { name: 'Results for “red circle”' }).waitFor();
    await page.locator('.results[aria-busy="false"] [data-testid="result"]').first().waitFor({ timeout: 60_000 });
  }, 120_000);

  it('opens an image, answers a question, keeps the history and shows similar images', async () => {
    await page.locator(`[data-testid="result"][data-image-id="${openedId}"] .card-link`).click();
    const heading = page.getByTestId('detail-caption');
    await heading.waitFor();
    const shownCaption = await heading.innerText();
    if (model.strict) expect(shownCaption.toLowerCase()).toContain('red circle');

    const input = page.getByLabel('Your question');
    await input.fill('what color is the circle?');
    await input.press('Enter');
    await page.getByTestId('qa-answer').first().waitFor({ timeout: 60_000 });
    const answer = (await page.getByTestId('qa-answer').first().innerText()).trim();
    console.log(`asked "what color is the circle?" about "${shownCaption}": "${answer}"`);
    // Any trained model answers about a red circle it is shown (the bundled model, below its
    // targets, does not always rank one on the first page: models/blip-scenes/EVAL.md).
    if (model.semantic && hasRedCircle(idToScene.get(openedId)!)) expect(answer).toBe('red');
    else expect(answer.length).toBeGreaterThan(0);

    await page.getByRole('button', { name: 'how many shapes are there?' }).click();
    await expect.poll(() => page.getByTestId('qa-item').count(), { timeout: 60_000 }).toBe(2);
    const count = (await page.getByTestId('qa-answer').nth(1).innerText()).trim();
    // The answer is the model's business (its own tests check it); the page must show it.
    if (model.semantic) expect(count).toMatch(/^[0-3]$/);

    await expect.poll(() => page.getByTestId('similar').locator('li').count(), { timeout: 60_000 }).toBeGreaterThan(0);
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: path.join(ARTIFACTS, 'image-view.png'), fullPage: true });

    // The history survives leaving and coming back.
    await page.goBack();
    await page.getByRole('heading', { name: 'Results for “red circle”' }).waitFor();
    await page.goForward();
    await expect.poll(() => page.getByTestId('qa-item').count(), POLL).toBe(2);
  }, 180_000);

  it('deletes the image and it is gone from the results', async () => {
    await page.getByRole('button', { name: 'Delete', exact: true }).click();
    // The confirmation takes the focus: Enter confirms.
    await page.getByRole('button', { name: 'Delete image' }).waitFor();
    await expect.poll(() => page.evaluate(() => document.activeElement?.textContent?.trim()), POLL).toBe('Delete image');
    await page.keyboard.press('Enter');
    await page.getByText('Image deleted.').waitFor();
    await page.getByRole('heading', { name: 'Results for “red circle”' }).waitFor();
    await page.locator('.results[aria-busy="false"] [data-testid="result"]').first().waitFor({ timeout: 60_000 });
    expect(await page.locator(`[data-testid="result"][data-image-id="${openedId}"]`).count()).toBe(0);
    expect(await page.locator('[data-testid="result"]').count()).toBe(Math.min(12, files.length - 1));
    const after = await gql<{ image: null | { id: string } }>(service.url, `query($id: ID!) { image(id: $id) { id } }`, { id: openedId });
    expect(after.image).toBeNull();

    // Its address now says it is gone, in words.
    await page.goto(`${service.url}/#/image/${openedId}`);
    await page.getByRole('heading', { name: 'This image is not here any more' }).waitFor();
  }, 120_000);

  it('uploads with alt text, shows its match score, and captions again with other decoding', async () => {
    const scene: Scene = { name: 'alt', background: 'white', objects: [{ shape: 'circle', color: 'green', size: 'large', cx: 0.5, cy: 0.5 }] };
    const file = path.join(workDir, 'alt.png');
    fs.writeFileSync(file, await renderScene(scene));
    await page.goto(service.url);
    await page.getByRole('button', { name: 'Upload images', expanded: false }).click();
    await page.getByLabel('Alt text').fill(caption(scene));
    const chooser = page.waitForEvent('filechooser');
    await page.getByRole('button', { name: 'Choose files' }).click();
    await (await chooser).setFiles([file]);
    // The field applies to the files just added, then clears for the next ones.
    await expect.poll(() => page.getByLabel('Alt text').inputValue(), POLL).toBe('');
    const row = page.locator('[data-testid="upload-item"]', { hasText: 'alt.png' });
    await row.and(page.locator('[data-status="new"]')).waitFor({ timeout: 120_000 });

    const listed = await gql<{ images: { edges: Array<{ node: { id: string; altText: string | null; altTextMatch: number | null } }> } }>(
      service.url,
      `{ images(first: 1) { edges { node { id altText altTextMatch } } } }`,
    );
    const { id, altText, altTextMatch } = listed.images.edges[0]!.node;
    expect(altText).toBe(caption(scene));
    expect(altTextMatch).not.toBeNull();
    expect(await row.locator('.meter').innerText()).toContain(`${Math.round(altTextMatch! * 100)}%`);
    await page.getByRole('button', { name: 'Close the upload panel' }).click();

    await page.goto(`${service.url}/#/image/${id}`);
    await page.getByTestId('alt-text').waitFor();
    expect(await page.getByTestId('alt-text').innerText()).toBe(caption(scene));
    expect(await page.locator('.alt-text .meter').innerText()).toContain(`${Math.round(altTextMatch! * 100)}%`);
    await page.getByTestId('similar').locator('li').first().waitFor({ timeout: 60_000 });
    await page.screenshot({ path: path.join(ARTIFACTS, 'image-view-alt-text.png') });

    // Caption again, greedily: the recaption mutation goes out with numBeams 1 and the page shows
    // the caption the server stored.
    await page.getByLabel('Decoding').selectOption({ label: 'Greedy (fastest)' });
    const sent = page.waitForRequest((r) => r.url().endsWith('/graphql') && (r.postData() ?? '').includes('recaption('));
    await page.getByRole('button', { name: 'Caption again' }).click();
    expect(JSON.parse((await sent).postData()!).variables).toEqual({ id, options: { numBeams: 1 } });
    await page.getByText('New caption saved.').waitFor();
    const stored = await gql<{ image: { caption: string; captionMatch: number } }>(service.url, `query($id: ID!) { image(id: $id) { caption captionMatch } }`, { id });
    const shown = (await page.getByTestId('detail-caption').innerText()).toLowerCase().replace(/\.$/, '');
    expect(shown).toBe(stored.image.caption.toLowerCase());
    expect(await page.locator('.detail-side > .meter').innerText()).toContain(`${Math.round(stored.image.captionMatch * 100)}%`);
  }, 240_000);

  it('fits a narrow screen', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(`${service.url}/#/search?q=red+circle`);
    await page.locator('.results[aria-busy="false"] [data-testid="result"]').first().waitFor({ timeout: 60_000 });
    await page.evaluate(() => window.scrollTo(0, 0));
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    expect(overflow).toBeLessThanOrEqual(0);
    await page.screenshot({ path: path.join(ARTIFACTS, 'results-narrow.png') });
    await page.emulateMedia({ colorScheme: 'dark' });
    await page.waitForTimeout(400); // let the colour transitions finish
    await page.screenshot({ path: path.join(ARTIFACTS, 'results-narrow-dark.png') });
    await page.emulateMedia({ colorScheme: 'light' });
    const id = await page.locator('[data-testid="result"]').first().getAttribute('data-image-id');
    await page.goto(`${service.url}/#/image/${id}`);
    await page.getByTestId('detail-caption').waitFor();
    await page.screenshot({ path: path.join(ARTIFACTS, 'image-view-narrow.png'), fullPage: true });
    expect(await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth)).toBeLessThanOrEqual(0);
    // The upload panel keeps this session's uploads and their results.
    await page.getByRole('button', { name: 'Upload images', expanded: false }).click();
    await page.getByTestId('upload-list').waitFor();
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: path.join(ARTIFACTS, 'upload-narrow.png') });
    expect(await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth)).toBeLessThanOrEqual(0);
    await page.keyboard.press('Escape');
    await page.getByTestId('upload-panel').waitFor({ state: 'detached' });
  }, 120_000);

  it('says so in words when the server goes away', async () => {
    await page.setViewportSize({ width: 1280, height: 900 });
    await service.stop();
    await page.goto(`${service.url}/#/`).catch(() => undefined); // same document: no reload
    await page.getByLabel('Describe what you are looking for').fill('blue square');
    await page.keyboard.press('Enter');
    const alert = page.getByRole('alert').filter({ hasText: 'Search failed' });
    await alert.waitFor();
    expect(await alert.innerText()).toContain('Cannot reach the server');
    // isVisible() does not wait; on a loaded machine the button and footer render a moment later.
    await alert.getByRole('button', { name: 'Try again' }).waitFor({ state: 'visible' });
    await expect.poll(() => page.locator('footer').innerText(), POLL).toContain('The server is not answering');
    await page.screenshot({ path: path.join(ARTIFACTS, 'error-state.png') });
    expect(pageErrors).toEqual([]);
  }, 60_000);
});
