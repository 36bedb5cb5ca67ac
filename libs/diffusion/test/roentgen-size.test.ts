import * as fs from 'node:fs';
import * as path from 'node:path';
import { makeTempDir } from '@medsyn/testing';
import { decodeModel, onnx } from '@medsyn/onnx-graph';
import {
  buildSdModels,
  TextToImageModel,
  ROENTGEN_V2_ARCHITECTURE,
  TINY_SD2_ARCHITECTURE,
  type SdModelSummary,
} from '../src';

const { TensorProto_DataLocation: DataLocation, TensorProto_DataType: DataType } = onnx;

// The builder of the RoentGen-size benchmark model (bench/synthesizer-full.ts), at toy width:
// the same code writes the external weights files and converts to float16.
describe('buildSdModels (RoentGen-v2 architecture, random weights)', () => {
  const tmp = makeTempDir('roentgen-size');
  const dirs = { float32: path.join(tmp.dir, 'float32'), float16: path.join(tmp.dir, 'float16') };
  let summary: SdModelSummary;
  const images: Record<string, Float32Array> = {};

  beforeAll(async () => {
    summary = buildSdModels(
      [
        { dir: dirs.float32, dtype: 'float32' },
        { dir: dirs.float16, dtype: 'float16' },
      ],
      { architecture: TINY_SD2_ARCHITECTURE },
    );
    for (const [dtype, dir] of Object.entries(dirs)) {
      const model = await TextToImageModel.load(dir, { intraOpThreads: 1 });
      try {
        expect(model.info).toMatchObject({
          unetDtype: dtype,
          vaeScaleFactor: 8,
          defaults: { height: 64, width: 64, scheduler: 'pndm' },
        });
        const [generated] = await model.generate([
          { prompt: 'Small left pleural effusion.', seed: 7n, numInferenceSteps: 3 },
        ]);
        images[dtype] = generated!.image.data as Float32Array;
      } finally {
        await model.close();
      }
    }
  });
  afterAll(() => tmp.remove());

  it('stores every weight of 1 KB or more in model.onnx_data at 4096-aligned offsets, the protobuf keeping only the reference', () => {
    for (const component of ['text_encoder', 'unet', 'vae_decoder']) {
      const model = decodeModel(fs.readFileSync(path.join(dirs.float32, component, 'model.onnx')));
      const dataBytes = fs.statSync(path.join(dirs.float32, component, 'model.onnx_data')).size;
      const external = model.graph!.initializer.filter((t) => t.dataLocation === DataLocation.EXTERNAL);
      expect(external.length).toBeGreaterThan(0);
      for (const t of external) {
        const entry = Object.fromEntries(t.externalData.map((e) => [e.key, e.value]));
        expect(entry.location).toBe('model.onnx_data');
        expect(Number(entry.offset) % 4096).toBe(0);
        expect(Number(entry.offset) + Number(entry.length)).toBeLessThanOrEqual(dataBytes);
        expect(t.rawData?.length ?? 0).toBe(0);
      }
      for (const t of model.graph!.initializer)
        if (t.dataLocation !== DataLocation.EXTERNAL) expect(t.rawData!.length).toBeLessThan(1024);
    }
  });

  it('writes the float16 copy as optimum --fp16 does: float16 weights and inputs, the timestep embedding kept in float32', () => {
    const model = decodeModel(fs.readFileSync(path.join(dirs.float16, 'unet', 'model.onnx')));
    const graph = model.graph!;
    expect(Object.fromEntries(graph.input.map((v) => [v.name, v.type!.tensorType!.elemType]))).toEqual({
      sample: DataType.FLOAT16,
      timestep: DataType.INT64,
      encoder_hidden_states: DataType.FLOAT16,
    });
    // float32 stays where it must: the sinusoid's frequencies and Resize's scales (tensor(float) in the spec).
    const floatConstants = graph.initializer.filter((t) => t.dataType === DataType.FLOAT).map((t) => t.name);
    expect(floatConstants).toEqual([
      'time_embedding.const',
      'up_blocks.0.upsamplers.0.scales',
      'up_blocks.1.upsamplers.0.scales',
      'up_blocks.2.upsamplers.0.scales',
    ]);
    expect(graph.initializer.filter((t) => t.dataType === DataType.FLOAT16).length).toBeGreaterThan(100);
    const sin = graph.node.find((n) => n.opType === 'Sin')!;
    expect(graph.node.find((n) => n.opType === 'Cast' && n.input[0] === sin.output[0])!.attribute[0]!.i).toBe(
      DataType.FLOAT16,
    );
  });

  it('counts the parameters of each component (the bench checks the full UNet against SD 2.1-base: 865,910,724)', () => {
    // The toy width's counts, exact: a change to the builder shows here first.
    expect(summary.parameters).toEqual({ text_encoder: 108384, unet: 1645572, vae_decoder: 49687 });
    expect(ROENTGEN_V2_ARCHITECTURE.unet).toMatchObject({
      blockChannels: [320, 640, 1280, 1280],
      layersPerBlock: 2,
      crossAttentionDim: 1024,
      heads: [5, 10, 20, 20],
      linearProjection: true,
    });
    expect(ROENTGEN_V2_ARCHITECTURE.text).toEqual({ hidden: 1024, layers: 23, heads: 16, mergeCount: 48894 });
  });

  it('loads both copies through TextToImageModel and the float16 image stays within a grey level of the float32 one', () => {
    const [a, b] = [images.float32!, images.float16!];
    let max = 0;
    let sum = 0;
    for (let i = 0; i < a.length; i++) {
      const d = Math.abs(a[i]! - b[i]!);
      max = Math.max(max, d);
      sum += d;
    }
    // The bench's tolerance (mean 1/255, max 8/255); the toy model is far inside it (~5e-5, 5e-4).
    expect(sum / a.length).toBeLessThan(1 / 255);
    expect(max).toBeLessThan(8 / 255);
    expect(a.some((v) => v !== a[0])).toBe(true);
  });
});
