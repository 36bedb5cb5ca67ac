// The TypeScript side of this service's cross-implementation tests: what libs/vlp,
// libs/artifact-store and libs/encoder-bundle make of the same inputs, printed as JSON.
//   node --conditions=medsyn-source --import tsx reference.ts COMMAND ARGS...
//   parse-config CASES_JSON                 each case -> { config, sha256 } or { error: { field, message } }
//   store-digest STORE_URI KEY [folder]     { sha256 (stat), digest (storedDigest) }
//   pairs STORE_URI MANIFEST FRACTION SEED  { validation: record indices, epochs: [order of epoch 0, of epoch 1] } (ratio 0.5)
//   read-bundle STORE_URI PREFIX INPUT_JSON  libs/encoder-bundle's readEncoderBundle (validated), then both encoders run by
//                                           onnxruntime on INPUT_JSON's pixel_values / input_ids / attention_mask:
//                                           { manifest, image_embedding, text_embedding, outputs: names }
//   tokenize VOCAB_TXT MAX_LENGTH TEXTS_JSON  libs/wordpiece's encoding of each text: { ids: [[...]], masks: [[...]] }
//   train-vocab TEXTS_JSON VOCAB_SIZE        libs/wordpiece's vocabulary learnt from the texts: vocab.txt's text
//   tiny-diffusion DIR                       a tiny random-weight diffusion model in the ONNX export layout (the synthesizer's)
//   vlp-loss CASE_JSON PARAMS_OUT           libs/vlp's training graph (forward, training mode) on the case's
//                                           batch: { loss, parts }; its seeded initial parameters -> PARAMS_OUT
import { readFileSync, writeFileSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import { openStore, storedDigest } from '@medsyn/artifact-store';
import { buildTinyModel } from '@medsyn/diffusion';
import { readEncoderBundle } from '@medsyn/encoder-bundle';
import { WordPieceTokenizer } from '@medsyn/wordpiece';
import { GraphBuilder, encodeModel, type Tensor } from '@medsyn/onnx-graph';
import { encodeSafetensors } from '@medsyn/training';
import { PretrainingConfigError, configDigest, parsePretrainingConfig } from '@medsyn/config';
import { encoderSpecOf, epochOrder, loadPairManifests, splitPairs, vlpObjective } from '@medsyn/vlp';

interface LossCase {
  config: unknown;
  vocabSize: number;
  /** pixel_values, input_ids, attention_mask, word_mask as { dims, data }. */
  batch: Record<string, { dims: number[]; data: number[] }>;
}

async function vlpLoss(caseFile: string, paramsOut: string): Promise<unknown> {
  const c = JSON.parse(readFileSync(caseFile, 'utf8')) as LossCase;
  const config = parsePretrainingConfig(c.config);
  const spec = encoderSpecOf(config);
  spec.text!.bert.vocabSize = c.vocabSize;
  const g = new GraphBuilder('vlp');
  const objective = vlpObjective(g, {
    method: config.method,
    spec,
    batchSize: config.batchSize,
    seed: config.seed,
    temperature: config.temperature,
    methodOptions: config.methodOptions,
  });
  g.output(objective.loss, 'loss');
  for (const [name, value] of Object.entries(objective.metrics ?? {})) g.output(value, `part.${name}`);
  const parameters = new Map<string, Tensor>([...g.parameters].map(([name, p]) => [name, p.initial]));
  writeFileSync(paramsOut, encodeSafetensors(parameters));
  const session = await ort.InferenceSession.create(encodeModel(g.toModelProto()));
  const feeds: Record<string, ort.Tensor> = {};
  for (const input of g.inputs) {
    const t = c.batch[input.name];
    if (!t) throw new Error(`the case has no ${input.name}`);
    feeds[input.name] =
      input.dtype === 'int64'
        ? new ort.Tensor(
            'int64',
            BigInt64Array.from(t.data, (v) => BigInt(v)),
            t.dims,
          )
        : new ort.Tensor('float32', Float32Array.from(t.data), t.dims);
  }
  const out = await session.run(feeds);
  await session.release();
  const parts = Object.fromEntries(
    Object.keys(out)
      .filter((k) => k.startsWith('part.'))
      .map((k) => [k.slice(5), Number(out[k]!.data[0])]),
  );
  return { loss: Number(out.loss!.data[0]), parts };
}

type Command = (args: string[]) => Promise<unknown>;

const COMMANDS: Record<string, Command> = {
  'parse-config': async ([file]) =>
    (JSON.parse(readFileSync(file!, 'utf8')) as unknown[]).map((value) => {
      try {
        const config = parsePretrainingConfig(value);
        return { config, sha256: configDigest(config).sha256 };
      } catch (error) {
        if (error instanceof PretrainingConfigError) return { error: { field: error.field, message: error.message } };
        throw error;
      }
    }),
  'vlp-loss': async ([caseFile, paramsOut]) => vlpLoss(caseFile!, paramsOut!),
  pairs: async ([uri, manifest, fraction, seed]) => {
    const { records } = await loadPairManifests(openStore(uri!), { real: [manifest!], synthetic: [] });
    const { train, validation } = splitPairs(records, Number(fraction), Number(seed));
    return {
      validation: validation.map((r) => r.index),
      epochs: [0, 1].map((e) => epochOrder(train, 0.5, Number(seed), e).map((r) => r.index)),
    };
  },
  'read-bundle': async ([uri, prefix, inputFile]) => {
    const bundle = await readEncoderBundle(openStore(uri!), prefix!);
    const input = JSON.parse(readFileSync(inputFile!, 'utf8')) as LossCase['batch'];
    const tensor = (name: string) => {
      const t = input[name]!;
      return name === 'pixel_values'
        ? new ort.Tensor('float32', Float32Array.from(t.data), t.dims)
        : new ort.Tensor(
            'int64',
            BigInt64Array.from(t.data, (v) => BigInt(v)),
            t.dims,
          );
    };
    const image = await ort.InferenceSession.create(bundle.imageEncoder);
    const text = await ort.InferenceSession.create(bundle.textEncoder!);
    const imageOut = await image.run({ pixel_values: tensor('pixel_values') });
    const textOut = await text.run({ input_ids: tensor('input_ids'), attention_mask: tensor('attention_mask') });
    return {
      manifest: bundle.manifest,
      image_embedding: Array.from(imageOut.image_embedding!.data as Float32Array),
      text_embedding: Array.from(textOut.text_embedding!.data as Float32Array),
      outputs: [...image.outputNames, ...text.outputNames],
    };
  },
  tokenize: async ([vocab, maxLength, texts]) => {
    const tokenizer = WordPieceTokenizer.fromVocab(readFileSync(vocab!, 'utf8'), { maxLength: Number(maxLength) });
    const encoded = await Promise.all(
      (JSON.parse(readFileSync(texts!, 'utf8')) as string[]).map((t) => tokenizer.encode(t)),
    );
    return { ids: encoded.map((e) => e.inputIds), masks: encoded.map((e) => e.attentionMask) };
  },
  'train-vocab': async ([texts, vocabSize]) =>
    WordPieceTokenizer.train(JSON.parse(readFileSync(texts!, 'utf8')) as string[], {
      vocabSize: Number(vocabSize),
      maxLength: 16,
    }).vocabTxt(),
  'tiny-diffusion': async ([dir]) => buildTinyModel(dir!),
  'store-digest': async ([uri, key, folder]) => {
    const store = openStore(uri!);
    return {
      sha256: (await store.stat(key!))?.sha256 ?? null,
      digest: await storedDigest(store, key!, folder === 'folder'),
    };
  },
};

async function main(): Promise<void> {
  const [command, ...args] = process.argv.slice(2);
  const run = COMMANDS[command ?? ''];
  if (!run) throw new Error(`unknown command ${command}; one of ${Object.keys(COMMANDS).join(', ')}`);
  process.stdout.write(`${JSON.stringify(await run(args))}\n`);
}

main().catch((error: Error) => {
  process.stderr.write(`${error.stack}\n`);
  process.exit(1);
});
