import { createClient, type Client } from 'graphql-ws';
import { useEffect, useState } from 'preact/hooks';
import { gql } from './api';
import { currentKey } from './api-key';

export interface JobNode {
  id: string;
  kind: 'INGEST' | 'REEMBED';
  state: 'QUEUED' | 'RUNNING' | 'SUCCEEDED' | 'FAILED';
  progress: number;
  done: number;
  total: number;
  error: string | null;
}

const FIELDS = 'id kind state progress done total error';
let client: Client | null = null;

/** The server's jobUpdates subscription (graphql-ws, same origin, path /graphql). */
function wsClient(): Client {
  const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/graphql`;
  // Browsers cannot set Authorization on a WebSocket: the key travels as a connection parameter,
  // read again on every reconnect (src/http/authenticate.ts, principalOfUpgrade).
  client ??= createClient({
    url,
    retryAttempts: Infinity,
    shouldRetry: () => true,
    connectionParams: () => {
      const key = currentKey();
      return key ? { authorization: `Bearer ${key}` } : {};
    },
  });
  return client;
}

/**
 * Background work the server is doing (asynchronous ingests, re-embedding after a model change):
 * the unfinished jobs at first, then every update as it is streamed.
 */
export function useRunningJobs(): JobNode[] {
  const [jobs, setJobs] = useState<Map<string, JobNode>>(new Map());
  useEffect(() => {
    let live = true;
    const apply = (list: JobNode[]) =>
      setJobs((current) => {
        const next = new Map(current);
        for (const job of list) {
          if (job.state === 'QUEUED' || job.state === 'RUNNING') next.set(job.id, job);
          else next.delete(job.id);
        }
        return next;
      });
    const dispose = wsClient().subscribe<{ jobUpdates: JobNode }>(
      { query: `subscription { jobUpdates { ${FIELDS} } }` },
      { next: (msg) => msg.data && apply([msg.data.jobUpdates]), error: () => undefined, complete: () => undefined },
    );
    gql<{ jobs: { edges: Array<{ node: JobNode }> } }>(`{ jobs(first: 100, states: [QUEUED, RUNNING]) { edges { node { ${FIELDS} } } } }`)
      .then((data) => live && apply(data.jobs.edges.map((e) => e.node)))
      .catch(() => undefined);
    return () => {
      live = false;
      dispose();
    };
  }, []);
  return [...jobs.values()];
}
