import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { IO, LAYER_IO } from '../blip/blip-io-names.js';
import { ModelFormatError } from '../errors.js';

const dimSchema = z.union([z.number().int().nonnegative(), z.string().min(1)]);
const dtypeSchema = z.enum(['float32', 'int64', 'int8']);

export const ioSchema = z.object({
  name: z.string().min(1),
  dtype: dtypeSchema,
  shape: z.array(dimSchema),
});

export const graphSchema = z.object({
  file: z.string().min(1),
  sha256: z.string().regex(/^[0-9a-f]{64}$/i).optional(),
  bytes: z.number().int().positive().optional(),
  /**
   * ONNX external data files beside the graph (weights over protobuf's 2 GB limit, BLIP-2's
   * language model); sha256 then covers the graph file followed by these, in this order.
   */
  externalData: z.array(z.object({ file: z.string().min(1), bytes: z.number().int().positive() })).optional(),
  inputs: z.array(ioSchema).min(1),
  outputs: z.array(ioSchema).min(1),
});

const generationSchema = z.object({
  maxLength: z.number().int().positive(),
  minLength: z.number().int().nonnegative().default(0),
  numBeams: z.number().int().positive().default(1),
  repetitionPenalty: z.number().positive().default(1),
  prompt: z.string().default(''),
});

/**
 * How an image becomes the model's input, as Hugging Face's image processors do it (BLIP's and
 * BLIP-2's folders share it: src/ml/preprocess/).
 */
export const imageSchema = z.object({
  size: z.number().int().positive(),
  mean: z.tuple([z.number(), z.number(), z.number()]),
  std: z.tuple([z.number().positive(), z.number().positive(), z.number().positive()]),
  rescaleFactor: z.number().positive().default(1 / 255),
  resample: z.literal('bicubic').default('bicubic'),
  alpha: z.literal('drop').default('drop'),
});

/** The manifest format this runtime reads (docs/model-format.md). */
export const MODEL_FORMAT_VERSION = 2;

const manifestSchema = z.object({
  format: z.literal('blip-search-model'),
  formatVersion: z.literal(MODEL_FORMAT_VERSION, {
    error: (issue) => `format version ${JSON.stringify(issue.input)} is not supported: this runtime reads version ${MODEL_FORMAT_VERSION}; re-export the folder with tools/convert_hf.py (or tools/export_scenes.py), then tools/quantize.py for an int8 copy`,
  }),
  name: z.string().min(1),
  modelId: z.string().min(1),
  source: z.string().optional(),
  image: imageSchema,
  text: z.object({
    tokenizer: z.string().min(1),
    maxLength: z.number().int().min(2),
    vocabSize: z.number().int().positive(),
    doLowerCase: z.boolean().default(true),
    specialTokens: z.object({
      pad: z.number().int(),
      unk: z.number().int(),
      cls: z.number().int(),
      sep: z.number().int(),
      mask: z.number().int().optional(),
      dec: z.number().int(),
      enc: z.number().int(),
    }),
    itmFirstToken: z.enum(['cls', 'enc']).default('cls'),
    vqaFirstToken: z.enum(['cls', 'enc']).default('cls'),
  }),
  dims: z.object({
    embed: z.number().int().positive(),
    visionHidden: z.number().int().positive(),
    imageTokens: z.number().int().positive(),
    textHidden: z.number().int().positive(),
    decoderLayers: z.number().int().positive(),
    decoderHeads: z.number().int().positive(),
    decoderHeadDim: z.number().int().positive(),
  }).loose(),
  generation: z.object({
    caption: generationSchema,
    vqa: generationSchema,
  }),
  /** The Hugging Face config the graphs were exported from; only what the engine checks against. */
  config: z.object({
    text: z.object({ max_position_embeddings: z.number().int().positive().optional() }).loose().optional(),
  }).loose().optional(),
  /** Search defaults chosen for this model from its measured quality and speed. */
  search: z.object({
    /** ITC candidates ITM re-ranks when a query names none (SEARCH_CANDIDATES overrides it). */
    defaultCandidates: z.number().int().positive(),
  }).loose().optional(),
  graphs: z.record(z.string(), graphSchema),
  /** Present on a `tools.quantize` copy: its MatMul weights are int8 (docs/model-format.md). */
  quantization: z.object({
    weights: z.literal('int8'),
    /** modelId of the fp32 folder it was made from. */
    from: z.string().optional(),
    /** Rewritten MatMuls per graph. */
    matmuls: z.record(z.string(), z.number().int().nonnegative()).optional(),
  }).loose().optional(),
  tasks: z.object({
    retrieval: z.object({ vision: z.string(), textFeature: z.string(), itm: z.string() }),
    caption: z.object({ vision: z.string(), crossKv: z.string(), decoder: z.string() }),
    vqa: z.object({
      vision: z.string(),
      questionEncoder: z.string(),
      crossKv: z.string(),
      decoder: z.string(),
    }),
  }),
}).loose();

/** A model folder's manifest.json (docs/model-format.md, format version 2), validated. */
export type ModelManifest = z.infer<typeof manifestSchema>;
/**
 * What the inference runtime (sessions, workers) needs of any family's manifest: its graphs and
 * the graphs each task names (BLIP's and BLIP-2's, src/ml/blip2/blip2-manifest.ts).
 */
export interface GraphManifest {
  graphs: Record<string, GraphSpec>;
  tasks: Record<string, Record<string, string>>;
}
/** One graph entry of the manifest: file, hash, declared inputs and outputs. */
export type GraphSpec = z.infer<typeof graphSchema>;
/** One declared input or output: name, dtype, shape (numbers fixed, strings dynamic). */
export type IoSpec = z.infer<typeof ioSchema>;
/** Generation defaults of one task (caption or vqa). */
export type GenerationDefaults = z.infer<typeof generationSchema>;

/**
 * Validates a parsed manifest: the schema, then that every graph a task names exists.
 * @throws ModelFormatError listing every problem found.
 */
export function parseModelManifest(json: unknown, where = 'manifest.json'): ModelManifest {
  const parsed = manifestSchema.safeParse(json);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new ModelFormatError(`${where} is invalid:\n  ${problems.join('\n  ')}`);
  }
  const m = parsed.data;
  const known = Object.keys(m.graphs);
  const missing: string[] = [];
  for (const [task, graphs] of Object.entries(m.tasks)) {
    for (const [role, graph] of Object.entries(graphs)) {
      if (!(graph in m.graphs)) missing.push(`tasks.${task}.${role} = "${graph}"`);
    }
  }
  if (missing.length > 0) {
    throw new ModelFormatError(
      `${where} names graphs it does not define: ${missing.join(', ')}; defined graphs: ${known.join(', ')}`,
    );
  }
  const layers = Array.from({ length: m.dims.decoderLayers }, (_, l) => l);
  const perLayer = layers.flatMap((l) => [LAYER_IO.past(l, 'key'), LAYER_IO.past(l, 'value'), LAYER_IO.cross(l, 'key'), LAYER_IO.cross(l, 'value')]);
  const required = [
    ...REQUIRED_IO,
    { task: 'caption' as const, role: 'decoder', side: 'inputs' as const, names: perLayer },
    { task: 'vqa' as const, role: 'decoder', side: 'inputs' as const, names: perLayer },
  ];
  const wrong = required.flatMap(({ task, role, side, names }) => {
    const spec = m.graphs[(m.tasks[task] as Record<string, string>)[role] as string];
    const have = new Set((spec?.[side] ?? []).map((io) => io.name));
    const absent = names.filter((n) => !have.has(n));
    return absent.length ? [`tasks.${task}.${role} lacks ${side} ${absent.slice(0, 6).join(', ')}${absent.length > 6 ? ` and ${absent.length - 6} more` : ''}`] : [];
  });
  if (wrong.length > 0) throw new ModelFormatError(`${where}: ${wrong.join('; ')}`);
  return m;
}

/**
 * The manifest's decoder graphs that take cross-attention keys and values per input (a dynamic
 * first dimension, `inputs`), so that several inputs' generations can share one run per step.
 * Graphs exported before that take one input's ([1,H,S,Dh]) and run one generation at a time.
 */
export function decodersTakingSeveralInputs(m: ModelManifest): string[] {
  const decoders = [...new Set([m.tasks.caption.decoder, m.tasks.vqa.decoder])];
  return decoders.filter((name) => {
    const cross = m.graphs[name]?.inputs.find((io) => io.name === LAYER_IO.cross(0, 'key'));
    return typeof cross?.shape[0] === 'string';
  });
}

/** What the runtime feeds and fetches per task graph (docs/model-format.md, "Graphs"). */
const REQUIRED_IO: Array<{ task: keyof ModelManifest['tasks']; role: string; side: 'inputs' | 'outputs'; names: string[] }> = [
  { task: 'retrieval', role: 'vision', side: 'outputs', names: [IO.imageFeat, IO.itmStates, IO.itmScales] },
  { task: 'retrieval', role: 'itm', side: 'inputs', names: [IO.inputIds, IO.attentionMask, IO.itmStates, IO.itmScales] },
  { task: 'caption', role: 'vision', side: 'outputs', names: [IO.imageEmbeds] },
  { task: 'caption', role: 'decoder', side: 'inputs', names: [IO.pastLength] },
  { task: 'caption', role: 'decoder', side: 'outputs', names: [IO.logits, IO.newKv] },
  { task: 'vqa', role: 'decoder', side: 'inputs', names: [IO.pastLength] },
];

/** Reads and validates `<modelDir>/manifest.json`. */
export async function loadModelManifest(modelDir: string): Promise<ModelManifest> {
  const file = path.join(modelDir, 'manifest.json');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (cause) {
    throw new ModelFormatError(`cannot read ${file}`, { cause });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new ModelFormatError(`${file} is not valid JSON`, { cause });
  }
  return parseModelManifest(json, file);
}
