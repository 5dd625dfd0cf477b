import fs from 'node:fs';
import path from 'node:path';

/**
 * Whether a model folder's own evaluation (eval.json, written by `npm run eval` through the ONNX
 * graphs) meets the targets the bundled model is held to: precision@10 >= 0.9, caption accuracy
 * >= 0.85, VQA >= 0.9, overall and on held-out combinations. Meaning tests that only a model at
 * that level can pass (exact rankings of few images, exact answers to every question form) run
 * when it does; weaker meaning checks, which the model must pass regardless, always run.
 */
export function meetsEvalTargets(modelDir: string): boolean {
  const file = path.join(modelDir, 'eval.json');
  if (!fs.existsSync(file)) return false;
  const e = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, { overall: number; held_out: number }>;
  const at = (k: string, min: number) => (e[k]?.overall ?? 0) >= min && (e[k]?.held_out ?? 0) >= min;
  return at('precision_at_10', 0.9) && at('caption_accuracy', 0.85) && at('vqa_accuracy', 0.9);
}
