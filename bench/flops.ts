/**
 * Multiply-adds x 2 of a BLIP model's matrix products per operation, from its manifest's config
 * (softmax, LayerNorm and GELU are left out: a few % at base size). Two counts where they differ:
 * `hf` is the work as Hugging Face's modeling code does it (the FLOP limits use it), and
 * the executed count of our graphs, whose ITM and VQA question encoder compute cross-attention
 * from the text side (tools/blip/absorbed.py).
 */
import type { ModelManifest } from '../src/ml/manifest/model-manifest.js';

interface Arch { L: number; D: number; I: number; heads: number }

function arch(m: ModelManifest, part: 'vision' | 'text'): Arch {
  const c = (m as { config?: Record<string, Record<string, number>> }).config?.[part];
  if (c) return { L: c.num_hidden_layers as number, D: c.hidden_size as number, I: c.intermediate_size as number, heads: c.num_attention_heads as number };
  const D = part === 'vision' ? m.dims.visionHidden : m.dims.textHidden;
  return { L: m.dims.decoderLayers, D, I: 4 * D, heads: m.dims.decoderHeads };
}

export interface FlopModel {
  N: number;
  Dv: number;
  Dt: number;
  vision: number;
  text(T: number): number;
  /** ITM of one candidate, HF's way: every image token projected to keys and values per layer. */
  itmHf(T: number): number;
  /** ITM of one candidate as our graph computes it. */
  itm(T: number): number;
  crossKv(S: number, Denc: number): number;
  /** One decoder step of one row at cache length P, cross-attending to S states. */
  step(P: number, S: number): number;
  /** A whole caption: its vision graph, cross K/V, and `beams` rows for `generated` steps. */
  caption(generated: number, beams: number, includeVision: boolean): number;
}

export function flopModel(m: ModelManifest): FlopModel {
  const v = arch(m, 'vision');
  const t = arch(m, 'text');
  const N = m.dims.imageTokens;
  const patch = Math.round(m.image.size / Math.sqrt(N - 1));
  const V = m.text.vocabSize;
  const vision = 2 * (N - 1) * v.D * 3 * patch * patch + v.L * (2 * N * v.D * 4 * v.D + 4 * N * N * v.D + 4 * N * v.D * v.I);
  const textLayer = (T: number) => 2 * T * t.D * 4 * t.D + 4 * T * T * t.D + 4 * T * t.D * t.I;
  const crossHf = (T: number, S: number) => 2 * T * t.D * 2 * t.D + 4 * S * v.D * t.D + 4 * T * S * t.D;
  // q, o projections; q Wk_h and ctx Wv_h^T (T x Dv x Dt each); scores and context (H x T x S x Dv each)
  const crossAbsorbed = (T: number, S: number) => 2 * T * t.D * 2 * t.D + 2 * 2 * T * v.D * t.D + 2 * 2 * t.heads * T * S * v.D;
  const crossKv = (S: number, Denc: number) => t.L * 4 * S * Denc * t.D;
  const step = (P: number, S: number) =>
    t.L * (2 * t.D * 4 * t.D + 4 * (P + 1) * t.D + 2 * t.D * 2 * t.D + 4 * S * t.D + 4 * t.D * t.I) + 2 * t.D * t.D + 2 * t.D * V;
  return {
    N,
    Dv: v.D,
    Dt: t.D,
    vision,
    text: (T) => t.L * textLayer(T),
    itmHf: (T) => t.L * (textLayer(T) + crossHf(T, N)),
    itm: (T) => t.L * (textLayer(T) + crossAbsorbed(T, N)),
    crossKv,
    step,
    caption: (generated, beams, includeVision) => {
      let f = (includeVision ? vision : 0) + crossKv(N, v.D);
      for (let p = 1; p <= generated; p++) f += beams * step(p, N);
      return f;
    },
  };
}
