import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { checkOnnxModel, makeTempDir } from '@medsyn/testing';
import {
  buildTinyModel,
  TextToImageModel,
  ExecutionProviderError,
  GenerationInputError,
  ModelLoadError,
  fromFloat16Bits,
  toFloat16Bits,
} from '../src';

const PROMPT = 'Small left pleural effusion. No pneumothorax.';
const maxAbsDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

describe('TextToImageModel on a tiny export-layout model', () => {
  const tmp = makeTempDir('diffusion');
  let fp32: TextToImageModel;
  let fp16: TextToImageModel;

  beforeAll(async () => {
    fp32 = await TextToImageModel.load(buildTinyModel(path.join(tmp.dir, 'fp32')));
    // fp16 I/O, int64 token ids and an int64 [1] timestep, as optimum exports them.
    fp16 = await TextToImageModel.load(
      buildTinyModel(path.join(tmp.dir, 'fp16'), { dtype: 'float16', idsDtype: 'int64', timestep: 'int64-one' }),
    );
  });
  afterAll(async () => {
    await Promise.all([fp32?.close(), fp16?.close()]);
    tmp.remove();
  });

  it('reads the signature from the models: dtypes, sizes, scheduler and defaults', () => {
    expect(fp32.info).toMatchObject({
      unetDtype: 'float32',
      latentChannels: 4,
      vaeScaleFactor: 8,
      scalingFactor: 0.18215,
      maxPromptTokens: 77,
    });
    expect(fp32.info.defaults).toEqual({
      guidanceScale: 3,
      numInferenceSteps: 75,
      height: 64,
      width: 64,
      scheduler: 'pndm',
    });
    expect(fp16.info.unetDtype).toBe('float16');
    expect(fp32.info.digest).toMatch(/^[0-9a-f]{64}$/);
  });

  it('writes the export layout with models that pass onnx.checker (opset 17, input and output names of a real export)', async () => {
    for (const component of ['text_encoder', 'unet', 'vae_decoder'])
      checkOnnxModel(fs.readFileSync(path.join(tmp.dir, 'fp32', component, 'model.onnx')), component);
    checkOnnxModel(fs.readFileSync(path.join(tmp.dir, 'fp16', 'unet', 'model.onnx')), 'fp16-unet');
    for (const file of [
      'model_index.json',
      'scheduler/scheduler_config.json',
      'tokenizer/vocab.json',
      'tokenizer/merges.txt',
      'vae_decoder/config.json',
      'unet/config.json',
    ])
      expect(fs.existsSync(path.join(tmp.dir, 'fp32', file))).toBe(true);
  });

  it('generates the same image for the same seed and another for another seed', async () => {
    const request = { prompt: PROMPT, seed: 42n, numInferenceSteps: 6 };
    const [a] = await fp32.generate([request]);
    const [b] = await fp32.generate([request]);
    const [c] = await fp32.generate([{ ...request, seed: 43n }]);
    expect(a!.image.width).toBe(64);
    expect(Array.from(a!.image.data)).toEqual(Array.from(b!.image.data));
    expect(maxAbsDiff(a!.image.data, c!.image.data)).toBeGreaterThan(1e-3);
  });

  it('changes the image with the guidance scale and the negative prompt', async () => {
    const base = { prompt: PROMPT, seed: 5n, numInferenceSteps: 6 };
    const [g1, g3, g3neg] = await fp32.generate([
      { ...base, guidanceScale: 1 },
      { ...base, guidanceScale: 3 },
      { ...base, guidanceScale: 3, negativePrompt: 'lateral view' },
    ]);
    expect(maxAbsDiff(g1!.image.data, g3!.image.data)).toBeGreaterThan(1e-4);
    expect(maxAbsDiff(g3!.image.data, g3neg!.image.data)).toBeGreaterThan(1e-4);
  });

  it('gives a request the same image alone as in a batch', async () => {
    const request = { prompt: PROMPT, seed: 9n, numInferenceSteps: 4, guidanceScale: 2 };
    const [alone] = await fp32.generate([request]);
    const [, inBatch] = await fp32.generate([{ prompt: 'cardiomegaly', seed: 1n, numInferenceSteps: 4 }, request]);
    expect(maxAbsDiff(alone!.image.data, inBatch!.image.data)).toBeLessThan(1e-4);
  });

  it('runs every scheduler and an fp16 export close to its fp32 twin', async () => {
    for (const scheduler of ['pndm', 'ddim', 'euler_ancestral', 'dpm_solver_pp_2m'] as const) {
      const [out] = await fp32.generate([{ prompt: PROMPT, seed: 3n, numInferenceSteps: 5, scheduler }]);
      expect(out!.image.data.every((v) => Number.isFinite(v))).toBe(true);
    }
    // Same weights (same builder seed), half-precision I/O: differences are fp16 rounding.
    const [a] = await fp32.generate([{ prompt: PROMPT, seed: 3n, numInferenceSteps: 5 }]);
    const [b] = await fp16.generate([{ prompt: PROMPT, seed: 3n, numInferenceSteps: 5 }]);
    expect(maxAbsDiff(a!.image.data, b!.image.data)).toBeLessThan(0.02);
  });

  it('reports prompt truncation past 77 tokens', async () => {
    const prompt = Array.from({ length: 90 }, () => 'opacity').join(' ');
    const [out] = await fp32.generate([{ prompt, seed: 1n, numInferenceSteps: 1 }]);
    expect(out!.promptTruncated).toBe(true);
    expect(out!.promptTokens).toBe(fp32.tokenizer.countTokens(prompt));
    expect(out!.promptTokens).toBeGreaterThan(92);
    const [short] = await fp32.generate([{ prompt: 'opacity', seed: 1n, numInferenceSteps: 1 }]);
    expect(short!.promptTruncated).toBe(false);
  });

  it('rejects bad parameters naming the field, without quoting the prompt', async () => {
    const bad = async (request: object, field: string) => {
      const error = await fp32
        .generate([{ prompt: PROMPT, seed: 1n, numInferenceSteps: 2, ...request }])
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(GenerationInputError);
      expect((error as GenerationInputError).field).toBe(field);
      expect((error as Error).message).not.toContain('effusion');
    };
    await bad({ prompt: '' }, 'prompt');
    await bad({ prompt: '   ' }, 'prompt');
    await bad({ prompt: 'effusion '.repeat(1200) }, 'prompt');
    await bad({ guidanceScale: -1 }, 'guidance_scale');
    await bad({ numInferenceSteps: 0 }, 'num_inference_steps');
    await bad({ height: 60 }, 'height');
    await bad({ width: 128 }, 'width'); // this export's UNet has a fixed 8x8 latent
    // SD 2.1's steps_offset 1: 1000 leading steps would start at timestep 1000, past the 1000-entry table.
    await bad({ numInferenceSteps: 1000 }, 'num_inference_steps');
  });

  // Weights over 1 KiB go to model.onnx_data, as torch.onnx / optimum write them.
  it('loads a UNet whose weights are in an external data file (how exports over 2 GB are stored)', async () => {
    const dir = path.join(tmp.dir, 'external');
    fs.cpSync(path.join(tmp.dir, 'fp32'), dir, { recursive: true });
    const unet = path.join(dir, 'unet', 'model.onnx');
    const script =
      'import onnx,sys; m=onnx.load(sys.argv[1]); onnx.save_model(m, sys.argv[1], save_as_external_data=True, all_tensors_to_one_file=True, location="model.onnx_data", size_threshold=1024)';
    execFileSync('/usr/bin/python3', ['-c', script, unet]);
    expect(fs.statSync(path.join(dir, 'unet', 'model.onnx_data')).size).toBeGreaterThan(fs.statSync(unet).size);
    const external = await TextToImageModel.load(dir);
    const request = { prompt: PROMPT, seed: 8n, numInferenceSteps: 3 };
    const [a] = await external.generate([request]);
    const [b] = await fp32.generate([request]);
    await external.close();
    expect(Array.from(a!.image.data)).toEqual(Array.from(b!.image.data));
  });

  it('fails to load with a message naming the missing or corrupt file', async () => {
    const copy = (name: string) => {
      const dir = path.join(tmp.dir, name);
      fs.cpSync(path.join(tmp.dir, 'fp32'), dir, { recursive: true });
      return dir;
    };
    const noUnet = copy('no-unet');
    fs.rmSync(path.join(noUnet, 'unet', 'model.onnx'));
    await expect(TextToImageModel.load(noUnet)).rejects.toThrow(/unet\/model.onnx not found/);

    const corrupt = copy('corrupt');
    fs.writeFileSync(path.join(corrupt, 'vae_decoder', 'model.onnx'), Buffer.from('this is not protobuf'));
    await expect(TextToImageModel.load(corrupt)).rejects.toThrow(/vae_decoder\/model.onnx could not be loaded/);

    const noIndex = copy('no-index');
    fs.rmSync(path.join(noIndex, 'model_index.json'));
    await expect(TextToImageModel.load(noIndex)).rejects.toThrow(ModelLoadError);

    const otherScheduler = copy('other-scheduler');
    const schedulerFile = path.join(otherScheduler, 'scheduler', 'scheduler_config.json');
    fs.writeFileSync(
      schedulerFile,
      JSON.stringify({ ...JSON.parse(fs.readFileSync(schedulerFile, 'utf8')), _class_name: 'LMSDiscreteScheduler' }),
    );
    await expect(TextToImageModel.load(otherScheduler)).rejects.toThrow(
      new ModelLoadError(
        'scheduler_config.json _class_name "LMSDiscreteScheduler" is not supported (supported: PNDMScheduler, DDIMScheduler, EulerAncestralDiscreteScheduler, DPMSolverMultistepScheduler)',
      ),
    );

    const noTokenizer = copy('no-tokenizer');
    fs.rmSync(path.join(noTokenizer, 'tokenizer', 'merges.txt'));
    await expect(TextToImageModel.load(noTokenizer)).rejects.toThrow(/tokenizer/);

    await expect(TextToImageModel.load(path.join(tmp.dir, 'nowhere'))).rejects.toThrow(/does not exist/);
  });

  it('refuses an execution provider this onnxruntime build lacks', async () => {
    await expect(TextToImageModel.load(path.join(tmp.dir, 'fp32'), { executionProvider: 'cuda' })).rejects.toThrow(
      ExecutionProviderError,
    );
  });

  it('converts float16 exactly for representable values and rounds to nearest', () => {
    const values = Float32Array.from([0, -0, 1, -2.5, 65504, 6.103515625e-5, 5.960464477539063e-8, 0.1]);
    const back = fromFloat16Bits(toFloat16Bits(values));
    expect(Array.from(back.slice(0, 7))).toEqual(Array.from(values.slice(0, 7)));
    expect(back[7]).toBeCloseTo(0.0999755859375, 10); // nearest half to 0.1
    expect(Array.from(toFloat16Bits(Float32Array.from([1e6, NaN])))).toEqual([0x7c00, 0x7e00]);
  });
});
