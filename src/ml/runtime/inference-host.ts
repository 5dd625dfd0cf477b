import { KvCacheDecoder } from '../blip/kv-cache-decoder.js';
import { IO } from '../blip/blip-io-names.js';
import { ModelFormatError } from '../errors.js';
import { beamSearch } from '../generation/beam-search.js';
import { greedySearch } from '../generation/greedy-search.js';
import type { ModelManifest } from '../manifest/model-manifest.js';
import type { GenerateJob, InferenceJob, JobExecutor, RunJob } from './inference-job.js';
import { OnnxSession, type SessionOptions } from './onnx-session.js';
import type { FloatTensor, TensorMap } from './tensor.js';

/** Options of {@link InferenceHost.open}. */
export interface InferenceHostOptions extends SessionOptions {
  /** Graph names to load; default: every graph the manifest's tasks name. */
  graphs?: string[];
  /** Run each graph once on zeros after loading. Default true. */
  warmUp?: boolean;
}

/**
 * Owns the ORT sessions of one model folder and executes jobs on them. Lives inside an inference
 * worker thread (or in-process for tests and the event-loop control measurement).
 */
export class InferenceHost implements JobExecutor {
  private constructor(private readonly sessions: Map<string, OnnxSession>) {}

  /** Loads (and warms up) the sessions. Blocks its thread for the loads. */
  static async open(modelDir: string, manifest: ModelManifest, options: InferenceHostOptions = {}): Promise<InferenceHost> {
    const names = options.graphs ?? [...new Set(Object.values(manifest.tasks).flatMap((t) => Object.values(t)))];
    const sessions = new Map<string, OnnxSession>();
    try {
      for (const name of names) {
        const spec = manifest.graphs[name];
        if (!spec) throw new ModelFormatError(`unknown graph "${name}"; the manifest defines: ${Object.keys(manifest.graphs).join(', ')}`);
        const session = await OnnxSession.create(modelDir, name, spec, options);
        sessions.set(name, session);
        if (options.warmUp ?? true) await session.warmUp();
      }
    } catch (err) {
      await Promise.all([...sessions.values()].map((s) => s.release()));
      throw err;
    }
    return new InferenceHost(sessions);
  }

  /** Runs one graph by manifest name. */
  run = async (graph: string, feeds: TensorMap): Promise<TensorMap> => {
    const session = this.sessions.get(graph);
    if (!session) throw new ModelFormatError(`graph "${graph}" is not loaded; loaded: ${[...this.sessions.keys()].join(', ')}`);
    return session.run(feeds);
  };

  execute(job: RunJob): Promise<TensorMap>;
  execute(job: GenerateJob): Promise<number[]>;
  execute(job: InferenceJob): Promise<TensorMap | number[]>;
  async execute(job: InferenceJob): Promise<TensorMap | number[]> {
    if (job.kind === 'run') return this.run(job.graph, job.feeds);
    return this.generate(job);
  }

  private async generate(job: GenerateJob): Promise<number[]> {
    const out = await this.run(job.crossKvGraph, { [IO.encoderHiddenStates]: job.encoderStates });
    const decoder = new KvCacheDecoder(this.run, job.decoderGraph, out[IO.crossKv] as FloatTensor);
    return job.config.numBeams > 1 ? beamSearch(decoder, job.prefix, job.config) : greedySearch(decoder, job.prefix, job.config);
  }

  async close(): Promise<void> {
    await Promise.all([...this.sessions.values()].map((s) => s.release()));
    this.sessions.clear();
  }
}
