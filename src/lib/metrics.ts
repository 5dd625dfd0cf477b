import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/**
 * The service's Prometheus metrics (prom-client), served at /metrics. One registry per
 * application, not prom-client's global one, so that several instances in one process (tests)
 * each count their own work. Gauges that mirror state (queue depths, index size) are read when
 * scraped, through the `observe*` hooks the composition root (src/app.ts) sets.
 */
export class Metrics {
  readonly registry = new Registry();

  readonly httpDuration = new Histogram({
    name: 'blip_http_request_duration_seconds',
    help: 'HTTP requests by method, route and status code',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });

  readonly resolverDuration = new Histogram({
    name: 'blip_graphql_resolver_duration_seconds',
    help: 'GraphQL root field resolvers (Query, Mutation) by field',
    labelNames: ['type', 'field', 'outcome'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });

  readonly inferenceDuration = new Histogram({
    name: 'blip_inference_duration_seconds',
    help: 'Inference jobs by graph (generate and itm: the composite decoding and matching jobs), dispatch to result',
    labelNames: ['graph'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });

  readonly imagesIngested = new Counter({
    name: 'blip_images_ingested_total',
    help: 'Images stored and made searchable, by mode (sync: ingestImage waited; async: an INGEST job)',
    labelNames: ['mode'] as const,
    registers: [this.registry],
  });

  readonly ingestFailures = new Counter({
    name: 'blip_ingest_failures_total',
    help: 'Ingests refused or failed, by mode',
    labelNames: ['mode'] as const,
    registers: [this.registry],
  });

  /** Set by the composition root: jobs per kind and state. */
  observeJobs: () => Promise<Map<string, number>> = async () => new Map();
  /** Set by the composition root: vectors in the index. */
  observeIndexSize: () => number = () => 0;
  /** Set by the composition root: jobs this process runs right now. */
  observeActiveJobs: () => number = () => 0;
  /** Set by the composition root: inference jobs waiting for a worker, per lane. */
  observeInferenceQueue: () => { interactive: number; background: number } = () => ({ interactive: 0, background: 0 });

  /** Set by the composition root on PostgreSQL API replicas: how far the index trails the change feed. */
  observeFeedLag: () => { positions: number; seconds: number } | null = () => null;

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'blip_' });
    // collect() runs with the gauge as `this`; these arrows keep the hooks' current values.
    const read = {
      jobs: () => this.observeJobs(),
      active: () => this.observeActiveJobs(),
      indexSize: () => this.observeIndexSize(),
      inferenceQueue: () => this.observeInferenceQueue(),
      feedLag: () => this.observeFeedLag(),
    };
    new Gauge({
      name: 'blip_index_feed_lag_positions',
      help: 'Index change-feed entries written but not yet applied to this replica\'s index (PostgreSQL)',
      registers: [this.registry],
      collect() {
        this.set(read.feedLag()?.positions ?? 0);
      },
    });
    new Gauge({
      name: 'blip_index_feed_lag_seconds',
      help: 'Seconds this replica\'s index has been behind the change feed (0: caught up)',
      registers: [this.registry],
      collect() {
        this.set(read.feedLag()?.seconds ?? 0);
      },
    });
    new Gauge({
      name: 'blip_jobs',
      help: 'Background jobs by kind and state (the queue depth is state="QUEUED")',
      labelNames: ['kind', 'state'] as const,
      registers: [this.registry],
      async collect() {
        this.reset();
        // Every series exists from the start (0), so rate() and alerts see the first job.
        for (const kind of ['INGEST', 'REEMBED']) for (const state of ['QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED']) this.set({ kind, state }, 0);
        for (const [key, n] of await read.jobs()) {
          const [kind = '', state = ''] = key.split(':');
          this.set({ kind, state }, n);
        }
      },
    });
    new Gauge({
      name: 'blip_jobs_running_here',
      help: 'Jobs this process is running',
      registers: [this.registry],
      collect() {
        this.set(read.active());
      },
    });
    new Gauge({
      name: 'blip_inference_queue',
      help: 'Inference jobs waiting for a worker, by priority lane (interactive: searches; background: ingest)',
      labelNames: ['lane'] as const,
      registers: [this.registry],
      collect() {
        const depth = read.inferenceQueue();
        this.set({ lane: 'interactive' }, depth.interactive);
        this.set({ lane: 'background' }, depth.background);
      },
    });
    new Gauge({
      name: 'blip_index_vectors',
      help: 'Vectors in the search index',
      registers: [this.registry],
      collect() {
        this.set(read.indexSize());
      },
    });
  }
}
