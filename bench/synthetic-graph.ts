/**
 * A synthetic decoder step for the bench: the chain of matrix products one BLIP decoder step
 * multiplies its rows through ({@link decoderStepShapes}), with random matrices of the same shapes
 * and precision, and nothing else. Its run time is what reading those bytes costs; the real step
 * is compared with it in the same process (`npm run bench`).
 *
 * Written as raw protobuf (a few ONNX fields) because the bench must not need Python, and the
 * weights (about 0.5 GB in fp32 at base size) are streamed to the file rather than built in memory.
 */
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';

function varint(n: number | bigint): Buffer {
  const out: number[] = [];
  let v = BigInt(n);
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) byte |= 0x80;
    out.push(byte);
  } while (v > 0n);
  return Buffer.from(out);
}
const key = (no: number, wire: number) => varint((no << 3) | wire);
const bytesField = (no: number, payload: Buffer | string) => {
  const b = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
  return Buffer.concat([key(no, 2), varint(b.length), b]);
};
const intField = (no: number, v: number) => Buffer.concat([key(no, 0), varint(v)]);

const FLOAT = 1;
const INT8 = 3;

function valueInfo(name: string, dims: Array<number | string>): Buffer {
  const dim = dims.map((d) => bytesField(1, typeof d === 'number' ? intField(1, d) : bytesField(2, d)));
  const tensorType = Buffer.concat([intField(1, FLOAT), bytesField(2, Buffer.concat(dim))]);
  return Buffer.concat([bytesField(1, name), bytesField(2, bytesField(1, tensorType))]);
}

function node(op: string, inputs: string[], output: string, domain = ''): Buffer {
  return Buffer.concat([...inputs.map((i) => bytesField(1, i)), bytesField(2, output), bytesField(3, output), bytesField(4, op), ...(domain ? [bytesField(7, domain)] : [])]);
}

/** A TensorProto's header (dims, type, name) and the raw_data key: the data follows it. */
function tensorHeader(name: string, dims: number[], type: number, dataBytes: number): { prefix: Buffer; total: number } {
  const head = Buffer.concat([...dims.map((d) => intField(1, d)), intField(2, type), bytesField(8, name), key(9, 2), varint(dataBytes)]);
  return { prefix: head, total: head.length + dataBytes };
}

/** [rows in, columns out, always float32]. */
export type Shape = [number, number, boolean?];

/**
 * The matrices one decoder step multiplies through, in order: per layer the four self-attention
 * and two cross-attention projections, the cross-attention keys and values it reads for
 * `encTokens` image tokens (as a [hidden, encTokens] and an [encTokens, hidden] product: the same
 * bytes and multiply-adds as every head's scores and context), and the feed-forward pair; then
 * the LM head's transform and vocabulary projection.
 */
export function decoderStepShapes(layers: number, hidden: number, intermediate: number, vocab: number, encTokens: number): Shape[] {
  const shapes: Shape[] = [];
  for (let l = 0; l < layers; l++) {
    for (let i = 0; i < 5; i++) shapes.push([hidden, hidden]);
    // keys and values are activations: float32 in an int8 model too
    shapes.push([hidden, encTokens, true], [encTokens, hidden, true], [hidden, hidden]);
    shapes.push([hidden, intermediate], [intermediate, hidden]);
  }
  shapes.push([hidden, hidden], [hidden, vocab]);
  return shapes;
}

/**
 * Writes the chain `x @ W1 @ W2 ...` to `file` (input `x` [rows, K1], output `y`); int8 uses
 * onnxruntime's DynamicQuantizeMatMul with per-column scales, as tools/quantize.py writes.
 * @returns the bytes of weights one run reads.
 */
export async function writeMatmulChain(file: string, rows: number, shapes: Shape[], int8: boolean): Promise<number> {
  const nodes: Buffer[] = [];
  const inits: Array<{ name: string; dims: number[]; type: number; fill: (b: Buffer) => void; bytes: number }> = [];
  let prev = 'x';
  let weightBytes = 0;
  shapes.forEach(([k, n, float], i) => {
    const out = i === shapes.length - 1 ? 'y' : `h${i}`;
    if (int8 && !float) {
      inits.push({ name: `w${i}`, dims: [k, n], type: INT8, bytes: k * n, fill: (b) => { for (let j = 0; j < b.length; j++) b[j] = (Math.random() * 255) | 0; } });
      inits.push({ name: `s${i}`, dims: [n], type: FLOAT, bytes: 4 * n, fill: (b) => { for (let j = 0; j < n; j++) b.writeFloatLE(0.002, 4 * j); } });
      inits.push({ name: `z${i}`, dims: [n], type: INT8, bytes: n, fill: (b) => b.fill(0) });
      nodes.push(node('DynamicQuantizeMatMul', [prev, `w${i}`, `s${i}`, `z${i}`], out, 'com.microsoft'));
      weightBytes += k * n;
    } else {
      inits.push({ name: `w${i}`, dims: [k, n], type: FLOAT, bytes: 4 * k * n, fill: (b) => { for (let j = 0; j < k * n; j++) b.writeFloatLE((Math.random() - 0.5) * 0.06, 4 * j); } });
      nodes.push(node('MatMul', [prev, `w${i}`], out));
      weightBytes += 4 * k * n;
    }
    prev = out;
  });
  const [k0] = shapes[0] as Shape;
  const [, nLast] = shapes[shapes.length - 1] as Shape;
  const headers = inits.map((t) => tensorHeader(t.name, t.dims, t.type, t.bytes));
  const graphRest = Buffer.concat([
    ...nodes.map((n) => bytesField(1, n)),
    bytesField(2, 'synthetic_decoder_step'),
    bytesField(11, valueInfo('x', [rows, k0])),
    bytesField(12, valueInfo('y', [rows, nLast])),
  ]);
  const initLen = headers.reduce((s, h) => s + key(5, 2).length + varint(h.total).length + h.total, 0);
  const graphLen = graphRest.length + initLen;
  const opsets = [bytesField(8, Buffer.concat([bytesField(1, ''), intField(2, 14)])), ...(int8 ? [bytesField(8, Buffer.concat([bytesField(1, 'com.microsoft'), intField(2, 1)]))] : [])];
  const out = createWriteStream(file);
  const write = async (b: Buffer) => {
    if (!out.write(b)) await once(out, 'drain');
  };
  await write(Buffer.concat([intField(1, 8), bytesField(2, 'blip-search-bench'), ...opsets, key(7, 2), varint(graphLen), graphRest]));
  for (const [i, t] of inits.entries()) {
    const h = headers[i] as { prefix: Buffer; total: number };
    await write(Buffer.concat([key(5, 2), varint(h.total), h.prefix]));
    const data = Buffer.allocUnsafe(t.bytes);
    t.fill(data);
    await write(data);
  }
  out.end();
  await once(out, 'finish');
  return weightBytes;
}
