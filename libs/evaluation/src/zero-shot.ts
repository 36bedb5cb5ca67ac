import * as ort from 'onnxruntime-node';
import type { PromptPair } from '@medsyn/config';
import { WordPieceTokenizer } from '@medsyn/wordpiece';
import { EncoderBundleError, type FrozenEncoder } from './encoder';

export function defaultPrompts(classNames: string[]): Record<string, PromptPair> {
  return Object.fromEntries(
    classNames.map((c) => [c, { positive: c.toLowerCase(), negative: `no ${c.toLowerCase()}` }]),
  );
}

function normalise(rows: Float32Array, n: number, dim: number): Float32Array {
  const out = new Float32Array(rows.length);
  for (let i = 0; i < n; i++) {
    let norm = 0;
    for (let d = 0; d < dim; d++) norm += rows[i * dim + d]! ** 2;
    norm = Math.sqrt(norm) || 1;
    for (let d = 0; d < dim; d++) out[i * dim + d] = rows[i * dim + d]! / norm;
  }
  return out;
}

/** Joint-space text embeddings of prompts, L2-normalised, [prompts.length, D]. */
export async function embedTexts(encoder: FrozenEncoder, texts: string[]): Promise<Float32Array> {
  const { manifest } = encoder;
  if (!encoder.text || !manifest.text || encoder.vocab === undefined)
    throw new EncoderBundleError(`zero-shot needs a text encoder: the bundle at ${encoder.location} has none`);
  const tokenizer = WordPieceTokenizer.fromVocab(encoder.vocab, {
    maxLength: manifest.text.max_length,
    lowercase: manifest.text.lowercase,
  });
  const batch = await tokenizer.encodeBatch(texts);
  const out = await encoder.text.run(
    {
      input_ids: new ort.Tensor('int64', batch.inputIds, [batch.batch, batch.length]),
      attention_mask: new ort.Tensor('int64', batch.attentionMask, [batch.batch, batch.length]),
    },
    [manifest.text.embedding.name],
  );
  const dim = manifest.text.embedding.dim;
  const t = out[manifest.text.embedding.name]!;
  if (t.dims.join(',') !== `${texts.length},${dim}`)
    throw new EncoderBundleError(
      `text_encoder.onnx output "${manifest.text.embedding.name}" has shape [${t.dims.join(', ')}], encoder.json says [${texts.length}, ${dim}]`,
    );
  return normalise(t.data as Float32Array, texts.length, dim);
}

/**
 * CheXzero-style zero-shot scores: for each image and class, the softmax over the cosine
 * similarities to the positive and the negative prompt, i.e. p(positive). `imageEmbeddings` are
 * the encoder's joint-space image embeddings [n, D]. Returns [n, classes] row-major.
 */
export async function zeroShotScores(
  encoder: FrozenEncoder,
  imageEmbeddings: Float32Array,
  n: number,
  classNames: string[],
  prompts: Record<string, PromptPair> = defaultPrompts(classNames),
): Promise<Float32Array> {
  const dim = encoder.manifest.image.embedding?.dim;
  if (!dim)
    throw new EncoderBundleError(
      `zero-shot needs an image embedding (image.embedding in encoder.json): the bundle at ${encoder.location} has none`,
    );
  if (encoder.manifest.text && encoder.manifest.text.embedding.dim !== dim)
    throw new EncoderBundleError(
      `image embedding dim ${dim} and text embedding dim ${encoder.manifest.text.embedding.dim} differ`,
    );
  const texts = classNames.flatMap((c) => {
    const pair = prompts[c];
    if (!pair) throw new RangeError(`zero-shot: no prompt pair for class "${c}"`);
    return [pair.positive, pair.negative];
  });
  const text = await embedTexts(encoder, texts);
  const images = normalise(imageEmbeddings, n, dim);
  const scores = new Float32Array(n * classNames.length);
  for (let i = 0; i < n; i++) {
    classNames.forEach((_, c) => {
      let pos = 0;
      let neg = 0;
      for (let d = 0; d < dim; d++) {
        pos += images[i * dim + d]! * text[2 * c * dim + d]!;
        neg += images[i * dim + d]! * text[(2 * c + 1) * dim + d]!;
      }
      // softmax([pos, neg])[0] = 1 / (1 + e^(neg - pos))
      scores[i * classNames.length + c] = 1 / (1 + Math.exp(neg - pos));
    });
  }
  return scores;
}
