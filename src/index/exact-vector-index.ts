import { dot } from '../domain/embedding.js';
import type { VectorIndex, VectorMatch } from './vector-index.js';

/** Brute force over every vector: the test oracle for HNSW recall, and fine for tiny corpora. */
export class ExactVectorIndex implements VectorIndex {
  private readonly vectors = new Map<number, Float32Array>();

  constructor(readonly dim: number) {}

  get size(): number {
    return this.vectors.size;
  }

  add(label: number, vector: Float32Array): void {
    if (vector.length !== this.dim) throw new RangeError(`vector has ${vector.length} dimensions, index has ${this.dim}`);
    this.vectors.set(label, Float32Array.from(vector));
  }

  remove(label: number): void {
    this.vectors.delete(label);
  }

  has(label: number): boolean {
    return this.vectors.has(label);
  }

  /** The stored vector of a label. */
  vector(label: number): Float32Array {
    const stored = this.vectors.get(label);
    if (!stored) throw new RangeError(`label ${label} is not in the index`);
    return Float32Array.from(stored);
  }

  labels(): number[] {
    return [...this.vectors.keys()];
  }

  search(query: Float32Array, k: number, allow?: (label: number) => boolean): VectorMatch[] {
    const matches = [...this.vectors].filter(([label]) => !allow || allow(label)).map(([label, v]) => ({ label, score: dot(query, v) }));
    return matches.sort((a, b) => b.score - a.score || a.label - b.label).slice(0, k);
  }
}
