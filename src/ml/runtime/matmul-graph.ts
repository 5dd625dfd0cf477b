/**
 * Hand-encoded ONNX models of chained fp32 MatMuls, written without an ONNX library (the wire
 * format is a few protobuf fields). Used by the bench to measure the machine's matmul peak
 * through onnxruntime, and by tests that need a graph slow enough to block an event loop.
 */

function varint(n: number): number[] {
  const out: number[] = [];
  let v = BigInt(n);
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) byte |= 0x80;
    out.push(byte);
  } while (v > 0n);
  return out;
}

function field(no: number, payload: number[] | string): number[] {
  const bytes = typeof payload === 'string' ? [...Buffer.from(payload, 'utf8')] : payload;
  return [...varint((no << 3) | 2), ...varint(bytes.length), ...bytes];
}

function intField(no: number, value: number): number[] {
  return [...varint(no << 3), ...varint(value)];
}

function valueInfo(name: string, dims: number[]): number[] {
  const shape = dims.flatMap((d) => field(1, intField(1, d)));
  const tensorType = [...intField(1, 1 /* FLOAT */), ...field(2, shape)];
  return [...field(1, name), ...field(2, field(1, tensorType))];
}

/**
 * `y = x @ w @ w @ ... @ w` (`depth` MatMuls) with x and w both f32 [n, n] inputs.
 * @returns the serialised ModelProto (opset 14) and its FLOP count (2 n^3 per MatMul).
 */
export function matmulChainModel(n: number, depth: number): { bytes: Uint8Array; flops: number } {
  const nodes: number[] = [];
  let prev = 'x';
  for (let i = 0; i < depth; i++) {
    const out = i === depth - 1 ? 'y' : `h${i}`;
    nodes.push(...field(1, [...field(1, prev), ...field(1, 'w'), ...field(2, out), ...field(3, `mm${i}`), ...field(4, 'MatMul')]));
    prev = out;
  }
  const graph = [...nodes, ...field(2, 'matmul_chain'), ...field(11, valueInfo('x', [n, n])), ...field(11, valueInfo('w', [n, n])), ...field(12, valueInfo('y', [n, n]))];
  const model = [...intField(1, 7), ...field(2, 'blip-search'), ...field(7, graph), ...field(8, [...field(1, ''), ...intField(2, 14)])];
  return { bytes: Uint8Array.from(model), flops: 2 * n ** 3 * depth };
}
