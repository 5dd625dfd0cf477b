import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromiumAvailable, launchBrowser, CHROMIUM } from './browser.js';
import { measureRing, tabTo } from './focus-ring.js';
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

  it('uploads several files, each with its own alt text, with progress and a result for each: new, duplicate, rejected', async () => {
    await page.getByRole('button', { name: 'Upload images', expanded: false }).click();
    // Every type the server accepts is listed (from serviceInfo).
    await expect.poll(() => page.getByTestId('accepted-types').innerText(), POLL).toContain('JPEG, PNG, WebP, GIF, TIFF, AVIF or HEIF');
    const chooser = page.waitForEvent('filechooser');
    await page.getByRole('button', { name: 'Choose files' }).click();
    await (await chooser).setFiles(files.map((f) => f.file));

    // Staged: one alt text field per file, limited as the server limits it.
    const rows = page.locator('[data-testid="upload-item"][data-status="ready"]');
    await expect.poll(() => rows.count(), POLL).toBe(files.length);
    const first = rows.filter({ hasText: `${files[0]!.scene.name}.png` });
    const second = rows.filter({ hasText: `${files[1]!.scene.name}.png` });
    const upload = page.getByRole('button', { name: `Upload ${files.length} images` });
    await second.getByLabel('Alt text').fill('x'.repeat(501));
    expect(await second.locator('.char-count').innerText()).toContain('1 characters too long (at most 500)');
    expect(await upload.isDisabled()).toBe(true);
    await second.getByLabel('Alt text').fill('');
    await first.getByLabel('Alt text').fill(caption(files[0]!.scene));
    expect(await upload.isDisabled()).toBe(false);

    const multipart = page.waitForRequest((r) => r.url().endsWith('/graphql') && (r.headers()['content-type'] ?? '').startsWith('multipart/form-data'));
    await upload.click();
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
    await page.getByRole('button', { name: 'Upload 2 images' }).click();
    const duplicate = page.locator('[data-testid="upload-item"][data-status="duplicate"]');
    const rejected = page.locator('[data-testid="upload-item"][data-status="rejected"]');
    await duplicate.waitFor({ timeout: 60_000 });
    await rejected.waitFor({ timeout: 60_000 });
    expect(await duplicate.innerText()).toContain('again.png');
    expect(await duplicate.innerText()).toContain('Already in library');
    // In words, with the code for support; never the decoder's own message.
    const reason = await rejected.getByTestId('upload-error').innerText();
    expect(reason).toContain('This file is not an image blip-search can read');
    expect(reason).toContain('UNSUPPORTED_IMAGE');
    expect(reason).not.toMatch(/buffer|vips|sharp/i);
    // Retrying would not help a file that is not an image.
    expect(await rejected.getByRole('button', { name: 'Try again' }).count()).toBe(0);
    await page.screenshot({ path: path.join(ARTIFACTS, 'upload-panel.png') });

    // The library behind the panel now shows all of them.
    await expect.poll(() => page.getByTestId('result').count(), { timeout: 30_000 }).toBe(files.length);
    const listed = await gql<{ images: { edges: Array<{ node: { id: string; sha256: string; altText: string | null; altTextMatch: number | null } }> } }>(
      service.url,
      `{ images(first: 50) { edges { node { id sha256 altText altTextMatch } } } }`,
    );
    idToScene = new Map(listed.images.edges.map((e) => [e.node.id, files.find((f) => f.sha256 === e.node.sha256)!.scene]));
    expect(idToScene.size).toBe(files.length);
    // Each file kept its own alt text: only the first had one.
    const withAlt = listed.images.edges.filter((e) => e.node.altText !== null);
    expect(withAlt.map((e) => e.node.sha256)).toEqual([files[0]!.sha256]);
    expect(withAlt[0]!.node.altText).toBe(caption(files[0]!.scene));
    expect(withAlt[0]!.node.altTextMatch).not.toBeNull();
    await page.getByRole('button', { name: 'Close the upload panel' }).click();
  }, 300_000);

  it('a failed upload says why in words and can be tried again', async () => {
    const scene: Scene = { name: 'retry', background: 'gray', objects: [{ shape: 'square', color: 'green', size: 'large', cx: 0.5, cy: 0.5 }] };
    const file = path.join(workDir, 'retry.png');
    fs.writeFileSync(file, await renderScene(scene));
    await page.getByRole('button', { name: 'Upload images', expanded: false }).click();
    const chooser = page.waitForEvent('filechooser');
    await page.getByRole('button', { name: 'Choose files' }).click();
    await (await chooser).setFiles([file]);
    // The network fails once.
    await page.route('**/graphql', (route) => (route.request().method() === 'POST' && (route.request().headers()['content-type'] ?? '').startsWith('multipart') ? route.abort() : route.fallback()));
    await page.getByRole('button', { name: 'Upload 1 image' }).click();
    const row = page.locator('[data-testid="upload-item"]', { hasText: 'retry.png' });
    await row.and(page.locator('[data-status="rejected"]')).waitFor({ timeout: 30_000 });
    expect(await row.getByTestId('upload-error').innerText()).toContain('Cannot reach the server');
    await page.unroute('**/graphql');
    await row.getByRole('button', { name: 'Try again' }).click();
    await row.and(page.locator('[data-status="new"]')).waitFor({ timeout: 120_000 });
    await page.getByRole('button', { name: 'Close the upload panel' }).click();
    // Keep the collection at the scenes the ranking checks know.
    const listed = await gql<{ images: { edges: Array<{ node: { id: string } }> } }>(service.url, `{ images(first: 1) { edges { node { id } } } }`);
    // Deleting needs an admin key even from loopback (AUTH=local lets keyless clients read and write).
    await gql(service.url, `mutation($id: ID!) { deleteImage(id: $id) { deleted } }`, { id: listed.images.edges[0]!.node.id }, service.createKey('admin'));
  }, 180_000);

  it('searches "red circle" with the keyboard (red circles first once the model meets its targets)', async () => {
    await page.getByLabel('Describe what you are looking for').click();
    await page.keyboard.type('red circle');
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Results for “red circle”' }).waitFor();
    await page.locator('.results[aria-busy="false"]').waitFor({ timeout: 120_000 });

    // By default the cut-off hides noise: only matches of at least 50%, and a word on the rest.
    const meterValues = async () => (await page.locator('[data-testid="result"] .meter').allInnerTexts()).map((t) => Number(/(\d+)%/.exec(t)?.[1] ?? -1));
    const strongOnly = await meterValues();
    expect(strongOnly.every((v) => v >= 50)).toBe(true);
    expect(strongOnly.length).toBeLessThan(files.length);
    if (strongOnly.length > 0) expect(await page.getByTestId('weak-note').innerText()).toMatch(/\d+ weaker match(es are|\s+is) hidden/);
    if (model.strict) expect(strongOnly.length).toBeGreaterThanOrEqual(SCENES.filter(hasRedCircle).length);
    await page.screenshot({ path: path.join(ARTIFACTS, 'results-default-cutoff.png'), fullPage: true });
    await page.getByRole('switch', { name: 'Show weaker matches' }).check();
    await expect.poll(() => page.url(), POLL).toContain('weak=1');
    // Re-ranked search cards carry a match meter; waiting for all 12 means the grid shows this search,
    // not the list it replaces (a loaded machine once let the test read the previous grid).
    await expect.poll(() => page.locator('.results[aria-busy="false"] [data-testid="result"] .meter').count(), { timeout: 120_000 }).toBe(12);

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

    // Minimum match 95% (the cut-off on again): only strong matches stay (or a clear "no matching images").
    await page.getByRole('switch', { name: 'Show weaker matches' }).uncheck();
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
    await page.getByLabel('Minimum match').fill('0.5');
    await expect.poll(() => page.url(), POLL).not.toContain('min=');
    await page.getByRole('switch', { name: 'Show weaker matches' }).check();
    await expect.poll(() => page.url(), POLL).toContain('weak=1');
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

  it('shows the embedding order at once, then the re-ranked list when it is ready', async () => {
    // Hold the re-ranked request back, as a full-size model on a CPU would.
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    await page.route('**/graphql', async (route) => {
      const body = route.request().postData() ?? '';
      if (body.includes('"rerank":true') && body.includes('a blue square')) await held;
      await route.continue();
    });
    await page.goto(`${service.url}/#/search?q=${encodeURIComponent('a blue square')}`);
    const status = page.getByTestId('reranking');
    await status.waitFor();
    const cards = page.locator('[data-testid="result"]');
    await expect.poll(() => cards.count(), POLL).toBeGreaterThan(0);
    expect(await page.locator('.results').getAttribute('aria-busy')).toBe('true');
    expect(await page.locator('[data-testid="result"] .meter').count()).toBe(0); // embedding order: no match meter yet
    await page.screenshot({ path: path.join(ARTIFACTS, 'search-preliminary.png') });
    release();
    await page.locator('.results[aria-busy="false"] [data-testid="result"] .meter').first().waitFor({ timeout: 60_000 });
    expect(await status.count()).toBe(0);
    await page.unroute('**/graphql');
    await page.goBack();
    await page.getByRole('heading', { name: 'Results for “red circle”' }).waitFor();
    await page.locator('.results[aria-busy="false"] [data-testid="result"]').first().waitFor({ timeout: 60_000 });
  }, 120_000);

  it('searches by words and by both (keyword and hybrid modes)', async () => {
    await page.getByRole('radio', { name: 'Words' }).check();
    await expect.poll(() => page.url(), POLL).toContain('by=words');
    // Words: every card's caption (or alt text) has both words; no match meter (ranked by the words).
    const settled = async () => (await page.locator('.results[aria-busy="false"]').count()) > 0 && (await page.locator('[data-testid="result"] .meter').count()) === 0;
    await expect.poll(settled, POLL).toBe(true);
    const captions = await page.getByTestId('caption').allInnerTexts();
    expect(captions.length).toBeGreaterThan(0);
    for (const c of captions) expect(c.toLowerCase()).toMatch(/red[\s\S]*circle|circle[\s\S]*red/);
    expect(await page.getByRole('heading', { name: 'Results for “red circle”' }).isVisible()).toBe(true);
    if (model.strict) {
      const found = await page.locator('[data-testid="result"]').evaluateAll((els) => els.map((e) => e.getAttribute('data-image-id')!));
      for (const [id, scene] of idToScene) if (hasRedCircle(scene)) expect(found).toContain(id);
    }
    await page.screenshot({ path: path.join(ARTIFACTS, 'results-keyword.png') });

    await page.getByRole('radio', { name: 'Both' }).check();
    await expect.poll(() => page.url(), POLL).toContain('by=both');
    await expect.poll(() => page.locator('.results[aria-busy="false"] [data-testid="result"] .meter').count(), { timeout: 120_000 }).toBeGreaterThan(0);
    const hybrid = await page.locator('[data-testid="result"]').evaluateAll((els) => els.map((e) => e.getAttribute('data-image-id')!));
    if (model.strict) expect(hybrid.slice(0, SCENES.filter(hasRedCircle).length).every((id) => hasRedCircle(idToScene.get(id)!))).toBe(true);
    await page.getByRole('radio', { name: 'Meaning' }).check();
    await expect.poll(() => page.url(), POLL).not.toContain('by=');
  }, 180_000);

  it('filters a list by type, dates and metadata, and says plainly when nothing passes', async () => {
    await page.goto(`${service.url}/#/`);
    await expect.poll(() => page.getByTestId('result').count(), POLL).toBe(files.length);
    await page.getByRole('button', { name: 'Filters' }).click();
    await page.getByRole('checkbox', { name: 'PNG' }).check();
    await page.getByRole('button', { name: 'Apply filters' }).click();
    await expect.poll(() => page.url(), POLL).toContain('type=png');
    await expect.poll(() => page.getByTestId('result').count(), POLL).toBe(files.length);
    // The hash changes before the page re-renders from it: wait for the count, do not sample it.
    await expect.poll(() => page.getByRole('button', { name: 'Filters (1)' }).isVisible(), POLL).toBe(true);

    // Metadata must be a JSON object: said next to the field, and nothing is applied.
    await page.getByLabel('Metadata contains').fill('{album: trip}');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    expect(await page.locator('#filter-metadata-error').innerText()).toContain('not valid JSON');
    expect(page.url()).not.toContain('meta=');
    await page.getByLabel('Metadata contains').fill('{"album": "trip"}');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    await page.getByRole('heading', { name: 'No images match these filters' }).waitFor();
    // Taken dates: the scenes carry no EXIF, so a taken range leaves none either.
    await page.getByRole('button', { name: 'Clear filters' }).click();
    await expect.poll(() => page.getByTestId('result').count(), POLL).toBe(files.length);
    expect(page.url()).not.toContain('type=');
    const closed = page.getByRole('button', { name: /Filters/, expanded: false });
    if (await closed.count()) await closed.click();
    await page.getByLabel('Taken from').fill('2020-01-01');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    await page.getByRole('heading', { name: 'No images match these filters' }).waitFor();
    await page.screenshot({ path: path.join(ARTIFACTS, 'filters-empty.png') });
    await page.getByRole('button', { name: 'Clear filters' }).click();
    await expect.poll(() => page.getByTestId('result').count(), POLL).toBe(files.length);
  }, 120_000);

  it('searches by an image dropped on the search box, without storing it; a second drop searches again', async () => {
    /** Drops a scene's file on the search box and returns the scene of the first result. */
    const dropAndRank = async (name: string): Promise<string> => {
      const bytes = fs.readFileSync(files.find((f) => f.scene.name === name)!.file).toString('base64');
      await page.evaluate(
        ({ bytes, name }) => {
          const data = Uint8Array.from(atob(bytes), (c) => c.charCodeAt(0));
          const dt = new DataTransfer();
          dt.items.add(new File([data], `${name}.png`, { type: 'image/png' }));
          const box = document.querySelector('[data-testid="searchbar"]')!;
          box.dispatchEvent(new DragEvent('dragover', { bubbles: true, cancelable: true, dataTransfer: dt }));
          box.dispatchEvent(new DragEvent('drop', { bubbles: true, cancelable: true, dataTransfer: dt }));
        },
        { bytes, name },
      );
      await page.getByRole('heading', { name: 'Images like yours' }).waitFor();
      await page.locator(`[data-testid="query-image"] [title="${name}.png"]`).waitFor();
      // Read at once, not polled: a list that is not busy must already be this image's results
      // (the previous list, not busy, under the new heading was a bug).
      await page.locator('.results[aria-busy="false"] [data-testid="result"]').first().waitFor({ timeout: 60_000 });
      const first = await page.locator('[data-testid="result"]').first().getAttribute('data-image-id');
      return idToScene.get(first!)!.name;
    };
    expect(await dropAndRank('red-circle-white')).toBe('red-circle-white');
    expect(await dropAndRank('blue-circle-white')).toBe('blue-circle-white');
    // The drop went to the search, not to the upload panel, and nothing was stored.
    expect(await page.getByTestId('upload-panel').count()).toBe(0);
    const count = await gql<{ images: { totalCount: number } }>(service.url, `{ images(first: 1) { totalCount } }`);
    expect(count.images.totalCount).toBe(files.length);
    await page.screenshot({ path: path.join(ARTIFACTS, 'search-by-image.png') });
    await page.goto(`${service.url}/#/search?q=red+circle&weak=1`);
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
    // AUTH=local lets the page read and write without a key, not delete: the server answers
    // FORBIDDEN, the page asks for a key (made with `npm run cli -- keys create`), keeps it for the
    // tab and repeats the delete with it.
    const adminKey = service.createKey('admin');
    const asked: string[] = [];
    page.once('dialog', (dialog) => {
      asked.push(dialog.message());
      void dialog.accept(adminKey);
    });
    await page.getByRole('button', { name: 'Delete', exact: true }).click();
    // The confirmation takes the focus: Enter confirms.
    await page.getByRole('button', { name: 'Delete image' }).waitFor();
    await expect.poll(() => page.evaluate(() => document.activeElement?.textContent?.trim()), POLL).toBe('Delete image');
    await page.keyboard.press('Enter');
    await page.getByText('Image deleted.').waitFor();
    expect(asked).toHaveLength(1);
    expect(asked[0]).toMatch(/admin key/);
    expect(await page.evaluate(() => sessionStorage.getItem('blip-search.apiKey'))).toBe(adminKey);
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

  it('edits alt text and metadata on the image page; the match is scored again; captions again', async () => {
    const listed = await gql<{ images: { edges: Array<{ node: { id: string } }> } }>(service.url, `{ images(first: 1) { edges { node { id } } } }`);
    const id = listed.images.edges[0]!.node.id;
    const scene = idToScene.get(id)!;
    await page.goto(`${service.url}/#/image/${id}`);
    await page.getByTestId('detail-caption').waitFor();
    await page.getByRole('button', { name: 'Edit alt text and metadata' }).click();
    await page.getByRole('textbox', { name: 'Alt text' }).fill(caption(scene));
    await page.getByLabel('Metadata (a JSON object)').fill('{"album": "e2e", "n": 1}');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByText('Changes saved.').waitFor();
    const stored = await gql<{ image: { altText: string; altTextMatch: number; metadata: unknown } }>(service.url, `query($id: ID!) { image(id: $id) { altText altTextMatch metadata } }`, { id });
    expect(stored.image).toMatchObject({ altText: caption(scene), metadata: { album: 'e2e', n: 1 } });
    expect(await page.getByTestId('alt-text').innerText()).toBe(caption(scene));
    expect(await page.locator('.alt-text .meter').innerText()).toContain(`${Math.round(stored.image.altTextMatch * 100)}%`);
    expect(await page.getByTestId('metadata').innerText()).toContain('"album": "e2e"');
    await page.screenshot({ path: path.join(ARTIFACTS, 'image-view-edited.png') });

    // Caption again, greedily: the recaption mutation goes out with numBeams 1 and the page shows
    // the caption the server stored.
    await page.getByLabel('Decoding').selectOption({ label: 'Greedy (fastest)' });
    const sent = page.waitForRequest((r) => r.url().endsWith('/graphql') && (r.postData() ?? '').includes('recaption('));
    await page.getByRole('button', { name: 'Caption again' }).click();
    expect(JSON.parse((await sent).postData()!).variables).toEqual({ id, options: { numBeams: 1 } });
    await page.getByText('New caption saved.').waitFor();
    const after = await gql<{ image: { caption: string; captionMatch: number } }>(service.url, `query($id: ID!) { image(id: $id) { caption captionMatch } }`, { id });
    const shown = (await page.getByTestId('detail-caption').innerText()).toLowerCase().replace(/\.$/, '');
    expect(shown).toBe(after.image.caption.toLowerCase());
    expect(await page.locator('.detail-side > .meter').innerText()).toContain(`${Math.round(after.image.captionMatch * 100)}%`);
  }, 240_000);

  it('shows keyboard focus with rings of at least 3:1 contrast, light and dark (WCAG 2.2 AA)', async () => {
    await page.goto(`${service.url}/#/search?q=red+circle&weak=1`);
    await page.locator('.results[aria-busy="false"] [data-testid="result"]').first().waitFor({ timeout: 60_000 });
    await page.evaluate(() => window.scrollTo(0, 0));
    const card = page.locator('[data-testid="result"]').first();
    const targets: Array<[string, ReturnType<Page['locator']>, ReturnType<Page['locator']>]> = [
      ['search box', page.getByLabel('Describe what you are looking for'), page.getByLabel('Describe what you are looking for')],
      ['search by image button', page.getByRole('button', { name: 'Search by image' }), page.getByRole('button', { name: 'Search by image' })],
      ['search button', page.getByRole('button', { name: 'Search', exact: true }), page.getByRole('button', { name: 'Search', exact: true })],
      ['mode', page.getByRole('radio', { name: 'Meaning' }), page.locator('.segment.is-on span')],
      ['re-rank switch', page.getByRole('switch', { name: /Re-rank/ }), page.locator('.switch-track').first()],
      ['filters button', page.getByRole('button', { name: /Filters/ }), page.getByRole('button', { name: /Filters/ })],
      ['result card', card.locator('.card-link'), card],
      ['more like this', card.getByRole('link', { name: /More like this/ }), card.getByRole('link', { name: /More like this/ })],
    ];
    const report: string[] = [];
    for (const scheme of ['light', 'dark'] as const) {
      await page.emulateMedia({ colorScheme: scheme });
      for (const [name, focusable, ring] of targets) {
        await tabTo(page, focusable);
        const m = await measureRing(page, ring);
        report.push(`${scheme} ${name}: ${m.ratio.toFixed(2)}:1 (ring rgb(${m.ring.join(',')}) on rgb(${m.around.join(',')}), ${m.width}px)`);
        expect(m.width, `${scheme} ${name}`).toBeGreaterThanOrEqual(2);
        expect(m.ratio, `${scheme} ${name}: ${report.at(-1)}`).toBeGreaterThanOrEqual(3);
      }
      await tabTo(page, card.locator('.card-link'));
      await page.screenshot({ path: path.join(ARTIFACTS, `focus-ring-card-${scheme}.png`) });
    }
    console.log(`focus rings:\n  ${report.join('\n  ')}`);
    await page.emulateMedia({ colorScheme: 'light' });
  }, 120_000);

  it('fits a narrow screen', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(`${service.url}/#/search?q=red+circle&weak=1`);
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

  it('shows background work (asynchronous ingests) in the top bar while it runs, then clears it', async () => {
    await page.setViewportSize({ width: 1280, height: 900 });
    await page.goto(`${service.url}/#/`);
    await page.getByRole('heading').first().waitFor();
    // Everything the indicator says, recorded as it changes (the jobs may finish within a second).
    await page.evaluate(() => {
      const seen: string[] = [];
      (window as unknown as { jobTexts: string[] }).jobTexts = seen;
      new MutationObserver(() => {
        const text = document.querySelector('[role="status"].jobs-indicator')?.textContent;
        if (text && seen[seen.length - 1] !== text) seen.push(text);
      }).observe(document.body, { subtree: true, childList: true, characterData: true });
    });
    await page.waitForTimeout(1000); // the page's jobUpdates subscription is open
    for (const [i, color] of (['blue', 'green', 'yellow'] as const).entries()) {
      const png = await renderScene({ name: `async-${i}`, background: 'gray', objects: [{ shape: 'star', color, size: 'large', cx: 0.3 + i * 0.2, cy: 0.5 }] });
      const res = await gql<{ ingestImage: { image: { status: string } } }>(service.url, `mutation($b: String!) { ingestImage(input: { base64: $b }, wait: false) { image { status } } }`, { b: png.toString('base64') });
      expect(res.ingestImage.image.status).toBe('PROCESSING');
    }
    await expect.poll(() => page.evaluate(() => (window as unknown as { jobTexts: string[] }).jobTexts.join(' | ')), POLL).toMatch(/Processing \d image/);
    // Gone once every job has finished.
    await expect.poll(() => page.locator('.jobs-indicator').count(), POLL).toBe(0);
    const jobs = await gql<{ jobs: { edges: Array<{ node: { state: string } }> } }>(service.url, `{ jobs(first: 10, kind: INGEST) { edges { node { state } } } }`);
    expect(jobs.jobs.edges.map((e) => e.node.state)).toEqual(['SUCCEEDED', 'SUCCEEDED', 'SUCCEEDED']);
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
