import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { InferenceError, ModelFormatError } from '../errors.js';
import type { GraphManifest, GraphSpec } from '../manifest/model-manifest.js';
import { describeSpec, validateFeeds, warmUpDims } from './feed-validation.js';
import { describeTensor, sizeOf, type TensorMap } from './tensor.js';

/** Thread settings of one ORT session. */
export interface SessionOptions {
  /** Threads inside one operator (matmul): the main performance knob. Default 1. */
  intraOpNumThreads?: number;
  /** Threads across independent operators; BLIP graphs are sequential chains, so 1. */
  interOpNumThreads?: number;
  /**
   * Let the intra-op threads spin between operators. Default false: a worker holds a session
   * per graph, each with its own thread pool, and a pool that spins after its run takes the cores
   * from the next graph's (alternating two small graphs: 14 ms a pair spinning, 1.5 ms not, on our
   * 2-core machines).
   */
  spinning?: boolean;
}

/** How much of each graph file to verify against the manifest before loading. */
export type VerifyMode = 'sha256' | 'size' | 'none';

/**
 * One ONNX graph of a model folder, loaded in onnxruntime-node. The only place in the service
 * that imports onnxruntime-node: every other module passes plain {@link TensorData}.
 */
export class OnnxSession {
  private constructor(
    /** Manifest name of the graph, e.g. `vision_encoder`. */
    readonly graphName: string,
    /** The manifest's declaration of the graph's inputs and outputs. */
    readonly spec: GraphSpec,
    private readonly session: ort.InferenceSession,
  ) {}

  /**
   * Loads `spec.file` from `modelDir` and checks that the graph's input and output names are the
   * ones the manifest declares. Blocks the calling thread for the load (1-3 s at base size), which
   * is why sessions live in inference workers.
   * @throws ModelFormatError when the file is missing, unreadable or declares other names.
   */
  static async create(modelDir: string, graphName: string, spec: GraphSpec, options: SessionOptions = {}): Promise<OnnxSession> {
    const file = path.join(modelDir, spec.file);
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(file, {
        intraOpNumThreads: options.intraOpNumThreads ?? 1,
        interOpNumThreads: options.interOpNumThreads ?? 1,
        executionMode: 'sequential',
        graphOptimizationLevel: 'all',
        extra: { session: { intra_op: { allow_spinning: options.spinning ? '1' : '0' } } },
      });
    } catch (cause) {
      throw new ModelFormatError(`graph "${graphName}": onnxruntime cannot load ${file}: ${(cause as Error).message}`, { cause });
    }
    const declaredIn = spec.inputs.map((i) => i.name).sort();
    const actualIn = [...session.inputNames].sort();
    const missingOut = spec.outputs.map((o) => o.name).filter((n) => !session.outputNames.includes(n));
    if (declaredIn.join() !== actualIn.join() || missingOut.length > 0) {
      await session.release();
      throw new ModelFormatError(
        `graph "${graphName}" (${spec.file}) has inputs [${actualIn.join(', ')}] and outputs [${session.outputNames.join(', ')}]; ` +
          `the manifest declares inputs [${spec.inputs.map(describeSpec).join(', ')}] and outputs [${spec.outputs.map(describeSpec).join(', ')}]`,
      );
    }
    for (const meta of session.inputMetadata ?? []) {
      const want = spec.inputs.find((i) => i.name === meta.name);
      if (meta.isTensor && want && meta.type !== want.dtype) {
        await session.release();
        throw new ModelFormatError(`graph "${graphName}": input ${meta.name} is ${meta.type} in the graph, ${want.dtype} in the manifest`);
      }
    }
    return new OnnxSession(graphName, spec, session);
  }

  /**
   * Runs the graph. Feeds are validated against the manifest first; ORT failures are rethrown
   * as InferenceError naming the graph and each input's name, dtype and dims.
   * @param outputs the outputs to return (default: every declared one).
   * @returns those outputs, as plain tensors owning fresh buffers.
   */
  async run(feeds: TensorMap, outputs?: readonly string[]): Promise<TensorMap> {
    validateFeeds(this.graphName, this.spec, feeds);
    const wanted = outputs ?? this.spec.outputs.map((o) => o.name);
    const unknown = wanted.filter((name) => !this.spec.outputs.some((o) => o.name === name));
    if (unknown.length > 0) {
      throw new InferenceError(`graph "${this.graphName}" has no output ${unknown.join(', ')}; it has ${this.spec.outputs.map((o) => o.name).join(', ')}`);
    }
    const ortFeeds: Record<string, ort.Tensor> = {};
    for (const [name, t] of Object.entries(feeds)) ortFeeds[name] = new ort.Tensor(t.dtype, t.data, t.dims);
    let result: ort.InferenceSession.OnnxValueMapType;
    try {
      // Only the outputs asked for: onnxruntime-node copies each fetched output into a new buffer.
      result = await this.session.run(ortFeeds, [...wanted]);
    } catch (cause) {
      const shapes = Object.entries(feeds).map(([n, t]) => describeTensor(n, t)).join(', ');
      throw new InferenceError(`graph "${this.graphName}" failed with inputs ${shapes}: ${(cause as Error).message}`, { cause });
    }
    const out: TensorMap = {};
    for (const name of wanted) {
      const v = result[name] as ort.Tensor | undefined;
      if (!v) throw new InferenceError(`graph "${this.graphName}" returned no "${name}"`);
      const dims = [...v.dims];
      if (v.type === 'float32') out[name] = { dtype: 'float32', dims, data: own(v.data as Float32Array) };
      else if (v.type === 'int64') out[name] = { dtype: 'int64', dims, data: own(v.data as BigInt64Array) };
      else if (v.type === 'int8') out[name] = { dtype: 'int8', dims, data: own(v.data as Int8Array) };
      else throw new InferenceError(`graph "${this.graphName}" output ${name} has unsupported type ${v.type}`);
    }
    return out;
  }

  /** One run on zeros (batch 1, past 0), so that the first request does not pay ORT's lazy set-up. */
  async warmUp(): Promise<void> {
    const feeds: TensorMap = {};
    for (const input of this.spec.inputs) {
      const dims = warmUpDims(input.shape);
      feeds[input.name] = input.dtype === 'float32'
        ? { dtype: 'float32', dims, data: new Float32Array(sizeOf(dims)) }
        : input.dtype === 'int8'
          ? { dtype: 'int8', dims, data: new Int8Array(sizeOf(dims)) }
          : { dtype: 'int64', dims, data: new BigInt64Array(sizeOf(dims)).fill(1n) };
    }
    await this.run(feeds);
  }

  /** Frees the native session. */
  async release(): Promise<void> {
    await this.session.release();
  }
}

// Outputs may be views into a larger native buffer; copy those so they can be transferred.
function own<T extends Float32Array | BigInt64Array | Int8Array>(a: T): T {
  return a.byteOffset === 0 && a.byteLength === a.buffer.byteLength ? a : (a.slice() as T);
}

/**
 * Checks every graph file of the manifest: size (always, when given) and sha256 (mode 'sha256').
 * Streams the file, so it does not block the event loop for long.
 * @throws ModelFormatError naming the file, the expected and the actual value.
 */
export async function verifyGraphFiles(modelDir: string, manifest: Pick<GraphManifest, 'graphs'>, mode: VerifyMode = 'sha256'): Promise<void> {
  if (mode === 'none') return;
  await Promise.all(Object.entries(manifest.graphs).map(async ([name, spec]) => {
    const files = [{ file: spec.file, bytes: spec.bytes }, ...(spec.externalData ?? [])];
    for (const { file: rel, bytes } of files) {
      const file = path.join(modelDir, rel);
      let size: number;
      try {
        size = (await stat(file)).size;
      } catch (cause) {
        throw new ModelFormatError(`graph "${name}": ${file} is missing`, { cause });
      }
      if (bytes !== undefined && size !== bytes) {
        throw new ModelFormatError(`graph "${name}": ${file} has ${size} bytes, the manifest says ${bytes}`);
      }
    }
    if (mode === 'sha256' && spec.sha256) {
      const hash = createHash('sha256');
      for (const { file } of files) {
        for await (const chunk of createReadStream(path.join(modelDir, file))) hash.update(chunk as Buffer);
      }
      const actual = hash.digest('hex');
      if (actual !== spec.sha256.toLowerCase()) {
        throw new ModelFormatError(`graph "${name}": ${spec.file} has sha256 ${actual}, the manifest says ${spec.sha256}`);
      }
    }
  }));
}

