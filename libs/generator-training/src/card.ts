import type { GeneratorConfig } from './config';
import type { GeneratorExample } from './data';

export interface ModelCardFacts {
  config: GeneratorConfig;
  examples: GeneratorExample[];
  steps: number;
  batchSize: number;
  learningRate: number;
  seed: number;
  unconditionalRate: number;
  finalLoss: number;
  parameterCount: number;
  trainingSeconds: number;
  /** The command that retrains this model. */
  command: string;
}

/** The model card shipped as README.md next to the weights: data, training, size, limits, attributions. */
export function modelCard(facts: ModelCardFacts): string {
  const { config } = facts;
  const out = config.imageSize * config.outputScale;
  const licences = new Map<string, number>();
  for (const e of facts.examples) licences.set(e.source.licence, (licences.get(e.source.licence) ?? 0) + 1);
  const attributions = facts.examples
    .map(
      (e) =>
        `- ${e.source.filename} (${e.source.licence})${e.source.doi ? ` doi:${e.source.doi}` : ''}${e.source.url ? ` ${e.source.url}` : ''}`,
    )
    .join('\n');
  return `# medsyn default generator

A small text-to-chest-X-ray diffusion model trained by medsyn's own training engine (onnxruntime,
autodiff over ONNX graphs) so that the pipeline runs end to end where RoentGen's gated weights
cannot be fetched. It is a demonstration model, not a clinical one.

- **Architecture:** pixel-space denoising diffusion. CLIP-style text encoder (${config.text.layers} layers,
  width ${config.text.hidden}, the first ${config.text.mergeCount} merges of CLIP's real BPE vocabulary) and a
  conditional U-Net (diffusers UNet2DConditionModel layout; channels ${config.unet.blockChannels.join('/')},
  cross-attention at the ${config.unet.crossAttention
    .map((c, i) => (c ? config.imageSize / 2 ** i : 0))
    .filter(Boolean)
    .join(' and ')} px levels) denoise
  ${config.imageSize}x${config.imageSize} grayscale images; the vae_decoder is a fixed bilinear x${config.outputScale} upsampler, so
  images come out at ${out}x${out}. ${facts.parameterCount.toLocaleString('en-US')} parameters.
- **Layout:** the Stable Diffusion ONNX export layout (model_index.json, text_encoder, unet,
  vae_decoder, tokenizer, scheduler): the synthesizer serves it exactly like an exported RoentGen.
  Weights of 1,024 values or more are stored as float16 and cast to float32 when loaded.
- **Noise schedule and sampler:** Stable Diffusion 2.1's scaled-linear betas (1000 steps),
  epsilon prediction, PNDM by default; ${Math.round(100 * facts.unconditionalRate)} % of prompts dropped in training so that
  classifier-free guidance works.
- **Training data:** ${facts.examples.length} frontal chest radiographs of the COVID-19 image data collection
  (Cohen et al., arXiv:2003.11597), only images whose licence allows redistribution of derived
  work with attribution (${[...licences].map(([l, n]) => `${l}: ${n}`).join(', ')}), with prompts built from their view,
  finding label and clinical notes (\`covidCxrReportText\`) by medsyn's anonymizer (de-identified,
  cut to 77 CLIP tokens).
- **Training:** ${facts.steps} AdamW steps, batch ${facts.batchSize}, learning rate ${facts.learningRate} (warm-up, cosine),
  seed ${facts.seed}; final loss ${facts.finalLoss.toFixed(4)}; ${Math.round(facts.trainingSeconds)} s on the machine that trained it.
- **Retrain:** \`${facts.command}\`

## Known limits

- Trained on ${facts.examples.length} images: it reproduces the look of a chest radiograph (lungs,
  mediastinum, ribs, devices at times), not findings a prompt asks for; text control is weak.
- ${out} px: too coarse for fine findings; downstream CPU experiments use 64-128 px anyway.
- Small data means memorisation: samples can resemble training images (all public and
  permissively licensed).

## Attributions (image, licence, source)

${attributions}
`;
}
