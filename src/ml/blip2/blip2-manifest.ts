import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { ModelFormatError } from '../errors.js';
import { LAYER_IO } from '../blip/blip-io-names.js';
import { graphSchema, imageSchema, MODEL_FORMAT_VERSION } from '../manifest/model-manifest.js';

/** ONNX input and output names of the BLIP-2 graphs (docs/model-format.md, "BLIP-2 folders"). */
export const BLIP2_IO = {
  pixelValues: 'pixel_values',
  imageEmbeds: 'image_embeds',
  queryEmbeds: 'query_embeds',
  inputIds: 'input_ids',
  prefixEmbeds: 'prefix_embeds',
  attentionMask: 'attention_mask',
  pastLength: 'past_length',
  logits: 'logits',
  newKv: 'new_kv',
  past: LAYER_IO.past,
} as const;

const blip2Schema = z.object({
  format: z.literal('blip-search-model'),
  formatVersion: z.literal(MODEL_FORMAT_VERSION),
  family: z.literal('blip2'),
  name: z.string().min(1),
  modelId: z.string().min(1),
  source: z.string().optional(),
  image: imageSchema,
  text: z.object({
    tokenizer: z.string().min(1),
    vocabSize: z.number().int().positive(),
    /** `{}` is replaced by the question. */
    prompt: z.string().includes('{}'),
    specialTokens: z.object({
      bos: z.number().int(),
      eos: z.number().int(),
      pad: z.number().int(),
      /** The newline token: generation stops there too (LAVIS's OPT models do). */
      newline: z.number().int().optional(),
    }),
  }),
  dims: z.object({
    visionHidden: z.number().int().positive(),
    imageTokens: z.number().int().positive(),
    queryTokens: z.number().int().positive(),
    llmHidden: z.number().int().positive(),
    llmLayers: z.number().int().positive(),
    llmHeads: z.number().int().positive(),
    llmHeadDim: z.number().int().positive(),
    maxPositions: z.number().int().positive(),
  }).loose(),
  generation: z.object({
    vqa: z.object({
      maxNewTokens: z.number().int().positive(),
      minNewTokens: z.number().int().nonnegative().default(0),
      numBeams: z.number().int().positive().default(1),
      repetitionPenalty: z.number().positive().default(1),
    }),
  }),
  graphs: z.record(z.string(), graphSchema),
  quantization: z.object({ weights: z.literal('int8'), from: z.string().optional() }).loose().optional(),
  tasks: z.object({
    vqa: z.object({ vision: z.string(), qformer: z.string(), decoder: z.string() }),
  }),
}).loose();

/** A BLIP-2 model folder's manifest.json, validated. */
export type Blip2Manifest = z.infer<typeof blip2Schema>;

/** Which model family a folder holds: `blip` (no `family` key, the format's original) or `blip2`. */
export type ModelFamily = 'blip' | 'blip2';

async function readManifestJson(modelDir: string): Promise<{ file: string; json: unknown }> {
  const file = path.join(modelDir, 'manifest.json');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (cause) {
    throw new ModelFormatError(`cannot read ${file}`, { cause });
  }
  try {
    return { file, json: JSON.parse(text) };
  } catch (cause) {
    throw new ModelFormatError(`${file} is not valid JSON`, { cause });
  }
}

/** The family a model folder declares (BLIP folders predate the key and say `blip` or nothing). */
export async function readModelFamily(modelDir: string): Promise<ModelFamily> {
  const { file, json } = await readManifestJson(modelDir);
  const family = (json as { family?: unknown }).family ?? 'blip';
  if (family !== 'blip' && family !== 'blip2') throw new ModelFormatError(`${file}: unknown model family ${JSON.stringify(family)}`);
  return family;
}

/**
 * Validates a parsed BLIP-2 manifest: the schema, the graphs the task names, and the decoder's
 * per-layer cache inputs.
 * @throws ModelFormatError listing the problems.
 */
export function parseBlip2Manifest(json: unknown, where = 'manifest.json'): Blip2Manifest {
  const parsed = blip2Schema.safeParse(json);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new ModelFormatError(`${where} is invalid:\n  ${problems.join('\n  ')}`);
  }
  const m = parsed.data;
  const missing = Object.entries(m.tasks.vqa).filter(([, g]) => !(g in m.graphs)).map(([role, g]) => `tasks.vqa.${role} = "${g}"`);
  if (missing.length > 0) throw new ModelFormatError(`${where} names graphs it does not define: ${missing.join(', ')}`);
  const decoder = m.graphs[m.tasks.vqa.decoder];
  const inputs = new Set(decoder?.inputs.map((i) => i.name));
  const need = [BLIP2_IO.inputIds, BLIP2_IO.prefixEmbeds, BLIP2_IO.attentionMask, BLIP2_IO.pastLength,
    ...Array.from({ length: m.dims.llmLayers }, (_, l) => [BLIP2_IO.past(l, 'key'), BLIP2_IO.past(l, 'value')]).flat()];
  const absent = need.filter((n) => !inputs.has(n));
  if (absent.length > 0) throw new ModelFormatError(`${where}: the decoder graph lacks inputs ${absent.slice(0, 6).join(', ')}`);
  return m;
}

/** Reads and validates `<modelDir>/manifest.json` of a BLIP-2 folder. */
export async function loadBlip2Manifest(modelDir: string): Promise<Blip2Manifest> {
  const { file, json } = await readManifestJson(modelDir);
  return parseBlip2Manifest(json, file);
}
