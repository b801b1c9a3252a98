/**
 * `src/backbone/onnx-export.ts` and its hand-written protobuf (`onnx-proto.ts`), read back by an
 * independent protobuf implementation (onnx-proto / protobufjs): the graph's interface, every conv's
 * weights against the network's own (transposed by this test), and refusals. That ONNX Runtime runs
 * the bytes to the tfjs features is `onnx.test.ts`.
 */
import onnxProto from 'onnx-proto';
import { describe, expect, it } from 'vitest';
import { BUILTIN_NETWORK, networkWeights, type NetworkNode } from '../../src/backbone/builtin.js';
import { exportOnnx } from '../../src/backbone/onnx-export.js';

const { onnx } = onnxProto;

function decode(bytes: Uint8Array) {
  return onnx.ModelProto.decode(bytes);
}

const dims = (v: onnxProto.onnx.IValueInfoProto) =>
  (v.type?.tensorType?.shape?.dim ?? []).map((d) => (d.dimParam ? d.dimParam : Number(d.dimValue)));

describe('exportOnnx: the built-in backbone as an ONNX model', () => {
  const model = decode(exportOnnx());
  const graph = model.graph!;

  it('declares opset 15, input image [1, 3, H, W] and output features [1, C, H0, W0], all float32', () => {
    expect(model.opsetImport.map((o) => [o.domain ?? '', Number(o.version)])).toEqual([['', 15]]);
    expect(Number(model.irVersion)).toBe(8);
    expect(graph.input!.map((v) => [v.name, v.type?.tensorType?.elemType, dims(v)])).toEqual([
      ['image', 1, [1, 3, 'H', 'W']],
    ]);
    expect(graph.output!.map((v) => [v.name, v.type?.tensorType?.elemType, dims(v)])).toEqual([
      ['features', 1, [1, 'C', 'H0', 'W0']],
    ]);
    expect(model.metadataProps.map((p) => [p.key, p.value])).toEqual([['seed', '20141117']]);
  });

  it("holds every conv's kernel as OIHW and its bias, bit for bit", () => {
    const weights = networkWeights();
    const inits = new Map(graph.initializer!.map((t) => [t.name!, t]));
    const convs = BUILTIN_NETWORK.filter((n) => n.type === 'conv');
    expect(inits.size).toBe(2 * convs.length + 1);
    for (const node of convs) {
      const w = weights.get(node.name)!;
      const [kh, kw, inC, outC] = w.kernelShape;
      const kernel = inits.get(`${node.name}.W`)!;
      expect(kernel.dims!.map(Number)).toEqual([outC, inC, kh, kw]);
      const raw = kernel.rawData!;
      const got = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
      // The transpose written out here, independently of hwioToOihw.
      for (let o = 0; o < outC; o++)
        for (let i = 0; i < inC; i++)
          for (let y = 0; y < kh; y++)
            for (let x = 0; x < kw; x++)
              if (got[((o * inC + i) * kh + y) * kw + x] !== w.kernel[((y * kw + x) * inC + i) * outC + o])
                throw new Error(`${node.name}: kernel (${o}, ${i}, ${y}, ${x}) differs`);
      const b = inits.get(`${node.name}.B`)!.rawData!;
      expect(new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength))).toEqual(w.bias);
    }
  });

  it('translates each node kind with TensorFlow same padding (SAME_UPPER)', () => {
    const ops = graph.node!.map((n) => n.opType);
    const count = (t: string) => ops.filter((o) => o === t).length;
    expect(count('Conv')).toBe(BUILTIN_NETWORK.filter((n) => n.type === 'conv').length);
    expect(count('Relu')).toBe(count('Conv'));
    expect(count('MaxPool')).toBe(BUILTIN_NETWORK.filter((n) => n.type === 'maxpool').length);
    expect(count('Concat')).toBe(2);
    for (const n of graph.node!.filter((x) => x.opType === 'Conv' || x.opType === 'MaxPool')) {
      const pad = n.attribute!.find((a) => a.name === 'auto_pad');
      expect(new TextDecoder().decode(pad!.s!)).toBe('SAME_UPPER');
    }
    const concat = graph.node!.find((n) => n.opType === 'Concat')!;
    expect(Number(concat.attribute![0].i)).toBe(1);
  });

  it('outputs several nodes as features_0, features_1, … when asked', () => {
    const two = decode(exportOnnx(BUILTIN_NETWORK, undefined, { outputs: ['conv2', 'inception4a/output'] }));
    expect(two.graph!.output!.map((v) => v.name)).toEqual(['features_0', 'features_1']);
  });

  it('refuses a node kind it cannot translate, and an unknown output node', () => {
    const odd = [
      ...BUILTIN_NETWORK,
      { name: 'up', type: 'pixel_shuffle', input: 'conv1' } as unknown as NetworkNode,
    ];
    expect(() => exportOnnx(odd, networkWeights())).toThrow(
      /node 'up' has kind 'pixel_shuffle', which has no ONNX translation/,
    );
    expect(() => exportOnnx(BUILTIN_NETWORK, undefined, { outputs: ['nope'] })).toThrow(/no node 'nope'/);
  });
});
