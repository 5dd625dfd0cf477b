import { InvalidInputError } from '../domain/errors.js';
import type { VisualAnswerer } from '../ml/visual-answerer.js';

/** A loaded model as serviceInfo.models and Answer.model describe it. */
export interface ModelInfo {
  name: string;
  modelId: string;
  family: string;
  tasks: string[];
  defaultAnswerer: boolean;
}

/**
 * The models askImage may use: BLIP (always) and any BLIP-2 folder loaded with VQA_MODEL_DIR, one
 * of them the default (VQA_MODEL_DIR's when given). A caller names one by name or modelId.
 */
export class AnswererRegistry {
  private readonly byKey = new Map<string, VisualAnswerer>();

  constructor(
    private readonly answerers: readonly VisualAnswerer[],
    private readonly defaultAnswerer: VisualAnswerer,
  ) {
    for (const a of answerers) {
      this.byKey.set(a.name, a);
      this.byKey.set(a.modelId, a);
    }
  }

  /** The named model, or the default when `model` is absent. */
  pick(model?: string | null): VisualAnswerer {
    if (model == null || model.trim() === '') return this.defaultAnswerer;
    const found = this.byKey.get(model.trim());
    if (!found) {
      throw new InvalidInputError(`unknown model "${model}"; loaded: ${this.answerers.map((a) => a.name).join(', ')}`, { argument: 'model' });
    }
    return found;
  }

  describe(a: VisualAnswerer): ModelInfo {
    return { name: a.name, modelId: a.modelId, family: a.family, tasks: [...a.tasks], defaultAnswerer: a === this.defaultAnswerer };
  }

  list(): ModelInfo[] {
    return this.answerers.map((a) => this.describe(a));
  }

  /** Closes the answerers the registry owns (every one but BLIP's engine, which the application closes). */
  async close(): Promise<void> {
    await Promise.all(this.answerers.map((a) => a.close()));
  }
}
