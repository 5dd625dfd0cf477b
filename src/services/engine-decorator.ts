import type { BlipEngine, InferenceOptions } from '../ml/blip-engine.js';

/**
 * A BlipEngine around another that forwards everything, running each model call through
 * {@link around} with its options passed through {@link scoped}. The engine's wrappers
 * (src/services/engine-errors.ts, src/services/request-scope.ts) each override those two hooks,
 * not every method, so a method added to BlipEngine is forwarded by both at once.
 */
export abstract class EngineDecorator implements BlipEngine {
  constructor(protected readonly inner: BlipEngine) {}

  get modelId() {
    return this.inner.modelId;
  }
  get embedDim() {
    return this.inner.embedDim;
  }
  get itmStateDims() {
    return this.inner.itmStateDims;
  }
  get defaultSearchCandidates() {
    return this.inner.defaultSearchCandidates;
  }
  get inputSize() {
    return this.inner.inputSize;
  }

  /** Runs one model call (its promise made by `call`). */
  protected abstract around<T>(call: () => Promise<T>): Promise<T>;

  /** The options a model call passes on; unchanged by default. */
  protected scoped<O extends InferenceOptions>(options: O | undefined): O | undefined {
    return options;
  }

  loadImage(...[bytes]: Parameters<BlipEngine['loadImage']>) {
    return this.around(() => this.inner.loadImage(bytes));
  }
  embedImage(...[image, options]: Parameters<BlipEngine['embedImage']>) {
    return this.around(() => this.inner.embedImage(image, this.scoped(options)));
  }
  embedText(...[text, options]: Parameters<BlipEngine['embedText']>) {
    return this.around(() => this.inner.embedText(text, this.scoped(options)));
  }
  itmScores(...[text, states, options]: Parameters<BlipEngine['itmScores']>) {
    return this.around(() => this.inner.itmScores(text, states, this.scoped(options)));
  }
  caption(...[image, options]: Parameters<BlipEngine['caption']>) {
    return this.around(() => this.inner.caption(image, this.scoped(options)));
  }
  answer(...[image, question, options]: Parameters<BlipEngine['answer']>) {
    return this.around(() => this.inner.answer(image, question, this.scoped(options)));
  }
  queueDepth() {
    return this.inner.queueDepth?.() ?? { interactive: 0, background: 0 };
  }
  countTokens(text: string) {
    return this.inner.countTokens(text);
  }
  close() {
    return this.inner.close();
  }
}
