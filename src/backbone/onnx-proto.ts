/**
 * The few ONNX protobuf messages roiserve writes (`ModelProto` and what it holds), encoded by hand.
 *
 * Why not a protobuf library: exporting is encode-only and needs a dozen field numbers, while
 * protobufjs (what `onnx-proto` wraps) is ~22 MB of node_modules in the container image, which has
 * a 400 MB budget. The tests decode what this writes with `onnx-proto` (a second, independent
 * protobuf implementation) and run it in ONNX Runtime.
 *
 * Field numbers are those of onnx/onnx.proto3. Repeated scalars are written packed (proto3's
 * default; every parser accepts it).
 */

/** `TensorProto.DataType` values used here. */
export const ONNX_FLOAT = 1;
/** `AttributeProto.AttributeType` values used here. */
const ATTR = { FLOAT: 1, INT: 2, STRING: 3, INTS: 7 } as const;

export interface OnnxAttribute {
  name: string;
  value: number | string | number[];
  /** For a number: `int` (default) or `float`. */
  kind?: 'int' | 'float';
}

export interface OnnxNode {
  opType: string;
  name: string;
  inputs: string[];
  outputs: string[];
  attributes?: OnnxAttribute[];
}

/** A float32 initializer. */
export interface OnnxTensor {
  name: string;
  dims: number[];
  data: Float32Array;
}

/** A graph input or output: float32 with fixed (number) or symbolic (string) dimensions. */
export interface OnnxValue {
  name: string;
  dims: Array<number | string>;
}

export interface OnnxModel {
  graphName: string;
  producerName: string;
  producerVersion: string;
  opset: number;
  nodes: OnnxNode[];
  initializers: OnnxTensor[];
  inputs: OnnxValue[];
  outputs: OnnxValue[];
  docString?: string;
  /** `metadata_props`: free key/value pairs (ORT exposes them as the model's custom metadata). */
  metadata?: Record<string, string>;
}

/** A growable byte buffer with protobuf's wire primitives. */
class Writer {
  #chunks: Uint8Array[] = [];
  #length = 0;

  get length(): number {
    return this.#length;
  }

  #push(bytes: Uint8Array): void {
    this.#chunks.push(bytes);
    this.#length += bytes.length;
  }

  /** Unsigned varint; negative int64 values become their 10-byte two's complement, as protobuf does. */
  varint(value: number | bigint): void {
    let v = BigInt.asUintN(64, BigInt(value));
    const out: number[] = [];
    while (v >= 0x80n) {
      out.push(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    out.push(Number(v));
    this.#push(Uint8Array.from(out));
  }

  tag(field: number, wireType: 0 | 1 | 2 | 5): void {
    this.varint((field << 3) | wireType);
  }

  int(field: number, value: number): void {
    this.tag(field, 0);
    this.varint(value);
  }

  float(field: number, value: number): void {
    this.tag(field, 5);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, value, true);
    this.#push(b);
  }

  bytes(field: number, value: Uint8Array): void {
    this.tag(field, 2);
    this.varint(value.length);
    this.#push(value);
  }

  string(field: number, value: string): void {
    this.bytes(field, new TextEncoder().encode(value));
  }

  message(field: number, build: (w: Writer) => void): void {
    const inner = new Writer();
    build(inner);
    this.bytes(field, inner.finish());
  }

  packed(field: number, values: number[]): void {
    const inner = new Writer();
    for (const v of values) inner.varint(v);
    this.bytes(field, inner.finish());
  }

  finish(): Uint8Array {
    const out = new Uint8Array(this.#length);
    let at = 0;
    for (const c of this.#chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }
}

function writeAttribute(w: Writer, a: OnnxAttribute): void {
  w.string(1, a.name);
  if (typeof a.value === 'string') {
    w.bytes(4, new TextEncoder().encode(a.value));
    w.int(20, ATTR.STRING);
  } else if (Array.isArray(a.value)) {
    w.packed(8, a.value);
    w.int(20, ATTR.INTS);
  } else if (a.kind === 'float') {
    w.float(2, a.value);
    w.int(20, ATTR.FLOAT);
  } else {
    w.int(3, a.value);
    w.int(20, ATTR.INT);
  }
}

function writeNode(w: Writer, n: OnnxNode): void {
  for (const i of n.inputs) w.string(1, i);
  for (const o of n.outputs) w.string(2, o);
  w.string(3, n.name);
  w.string(4, n.opType);
  for (const a of n.attributes ?? []) w.message(5, (m) => writeAttribute(m, a));
}

function writeTensor(w: Writer, t: OnnxTensor): void {
  const expected = t.dims.reduce((p, d) => p * d, 1);
  if (expected !== t.data.length)
    throw new Error(
      `ONNX initializer ${t.name}: dims [${t.dims.join(', ')}] need ${expected} values, got ${t.data.length}`,
    );
  w.packed(1, t.dims);
  w.int(2, ONNX_FLOAT);
  w.string(8, t.name);
  // raw_data is little-endian; a copy, so a view into a larger buffer writes only its own bytes.
  const raw = new Uint8Array(t.data.byteLength);
  const view = new DataView(raw.buffer);
  for (let i = 0; i < t.data.length; i++) view.setFloat32(4 * i, t.data[i], true);
  w.bytes(9, raw);
}

function writeValue(w: Writer, v: OnnxValue): void {
  w.string(1, v.name);
  w.message(2, (type) =>
    type.message(1, (tensor) => {
      tensor.int(1, ONNX_FLOAT);
      tensor.message(2, (shape) => {
        for (const d of v.dims)
          shape.message(1, (dim) => (typeof d === 'number' ? dim.int(1, d) : dim.string(2, d)));
      });
    }),
  );
}

/** Serialises a model: the bytes of an `.onnx` file. */
export function encodeOnnxModel(model: OnnxModel): Uint8Array {
  const w = new Writer();
  // IR version 8 goes with opset 15 (ONNX 1.10).
  w.int(1, 8);
  w.string(2, model.producerName);
  w.string(3, model.producerVersion);
  if (model.docString) w.string(6, model.docString);
  w.message(7, (g) => {
    for (const n of model.nodes) g.message(1, (m) => writeNode(m, n));
    g.string(2, model.graphName);
    for (const t of model.initializers) g.message(5, (m) => writeTensor(m, t));
    for (const v of model.inputs) g.message(11, (m) => writeValue(m, v));
    for (const v of model.outputs) g.message(12, (m) => writeValue(m, v));
  });
  w.message(8, (o) => {
    o.string(1, '');
    o.int(2, model.opset);
  });
  for (const [key, value] of Object.entries(model.metadata ?? {}))
    w.message(14, (m) => {
      m.string(1, key);
      m.string(2, value);
    });
  return w.finish();
}
