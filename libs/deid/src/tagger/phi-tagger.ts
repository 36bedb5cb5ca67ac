import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { ENGLISH_WORDS, MEDICAL_TERMS, NOT_NAMES, US_STATES } from '../dictionaries';
import type { PhiDetector, PhiLabel, PhiSpan } from '../types';
import { FEATURE_SLOTS, FEATURE_VERSION, FeatureExtractor } from './features';
import { TAGGER_CLASSES, receptiveRadius, type TaggerConfig } from './model';
import { tokenize, type Token } from './tokens';

/** What `tagger.json` next to `model.onnx` says about the model. */
export interface TaggerMeta {
  featureVersion: number;
  config: TaggerConfig;
  classes: readonly string[];
  /** A token is PHI when P(O) < threshold (then it takes its likeliest PHI class). */
  threshold: number;
  /** Per PHI class, a threshold on P(O) that replaces `threshold` when that class is the token's likeliest. */
  thresholds?: Thresholds;
}

export type Thresholds = Partial<Record<PhiLabel, number>>;

export interface PhiTaggerOptions {
  /** onnxruntime threads per run (default 1: the service scales by processes, not threads). */
  threads?: number;
  /** Overrides the model's own decision threshold on P(O) (all classes: the per-class ones are then ignored). */
  threshold?: number;
  /**
   * Tokens per window a long text is cut into (default 256), and the context each window sees past
   * the tokens it decides (default and least: the model's receptive radius, 16 for the shipped
   * model, so that cutting never changes an output).
   */
  window?: number;
  context?: number;
  /** Most tokens (padding included) of one onnxruntime run (default 16384). */
  batchTokens?: number;
}

/** The shipped model: `libs/deid/model/phi-tagger`, two levels above this file in src/ and in dist/. */
export const DEFAULT_TAGGER_DIR = join(__dirname, '..', '..', 'model', 'phi-tagger');

interface Pending {
  text: string;
  ruleSpans?: readonly PhiSpan[];
  resolve: (spans: PhiSpan[]) => void;
  reject: (error: unknown) => void;
}

interface Window {
  doc: number;
  start: number;
  end: number;
}

/**
 * The learned PHI tagger (an ONNX token classifier trained by libs/deid/train/train-tagger.ts).
 * Calls to detect() made in the same tick are tokenised together and padded into as few
 * onnxruntime runs as possible: a run costs ~50 µs whatever its size, a short report ~1 µs a token.
 */
export class PhiTagger implements PhiDetector {
  private pending: Pending[] = [];
  private scheduled = false;
  private readonly features: FeatureExtractor;
  private readonly threshold: number;
  private readonly thresholds: Thresholds;
  private readonly window: number;
  private readonly context: number;
  private readonly batchTokens: number;

  private constructor(
    private readonly session: ort.InferenceSession,
    readonly meta: TaggerMeta,
    options: PhiTaggerOptions,
  ) {
    if (meta.featureVersion !== FEATURE_VERSION)
      throw new Error(
        `tagger model has features v${meta.featureVersion}, this code computes v${FEATURE_VERSION}: retrain it`,
      );
    this.features = new FeatureExtractor(meta.config.buckets);
    this.threshold = options.threshold ?? meta.threshold;
    this.thresholds = options.threshold === undefined ? (meta.thresholds ?? {}) : {};
    this.window = options.window ?? 256;
    const radius = receptiveRadius(meta.config);
    this.context = options.context ?? radius;
    this.batchTokens = options.batchTokens ?? 16384;
    if (this.context < radius)
      throw new Error(`context ${this.context} is shorter than the model's receptive radius (${radius} tokens)`);
    if (this.window <= 2 * this.context) throw new Error('window must be longer than twice the context');
  }

  /** Loads model.onnx and tagger.json from dir (default: the model shipped with this package). */
  static async load(dir: string = DEFAULT_TAGGER_DIR, options: PhiTaggerOptions = {}): Promise<PhiTagger> {
    const [model, meta] = await Promise.all([
      readFile(join(dir, 'model.onnx')),
      readFile(join(dir, 'tagger.json'), 'utf8'),
    ]);
    return PhiTagger.create(model, JSON.parse(meta) as TaggerMeta, options);
  }

  static async create(model: Uint8Array, meta: TaggerMeta, options: PhiTaggerOptions = {}): Promise<PhiTagger> {
    const session = await ort.InferenceSession.create(model, {
      executionProviders: ['cpu'],
      graphOptimizationLevel: 'all',
      intraOpNumThreads: options.threads ?? 1,
      interOpNumThreads: 1,
    });
    return new PhiTagger(session, meta, options);
  }

  /**
   * The tagger's spans. It runs the rules for its features; a caller that already has
   * `new RuleDetector().find(text)` passes them in and saves that second run.
   */
  detect(text: string, ruleSpans?: readonly PhiSpan[]): Promise<PhiSpan[]> {
    return new Promise((resolve, reject) => {
      this.pending.push({ text, ruleSpans, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => void this.flush());
      }
    });
  }

  /** Log-probabilities [tokens, classes] of each text's tokens (the model's raw output, for training and tests). */
  async logProbabilities(
    texts: readonly string[],
    ruleSpans: readonly (readonly PhiSpan[] | undefined)[] = [],
  ): Promise<{ tokens: Token[]; logProbs: Float32Array }[]> {
    const docs = texts.map((text, i) => {
      const tokens = tokenize(text);
      return { ...this.features.prepare(text, tokens, ruleSpans[i]), tokens };
    });
    const out = docs.map((d) => ({
      tokens: d.tokens,
      logProbs: new Float32Array(d.tokens.length * TAGGER_CLASSES.length),
    }));
    // Each text is featurized once, and its windows (which overlap) copy their rows.
    const features = docs.map((d) => {
      const ids = new Int32Array(d.tokens.length * FEATURE_SLOTS);
      this.features.featurize(d, 0, d.tokens.length, ids);
      return ids;
    });
    const windows: Window[] = [];
    docs.forEach((d, doc) => {
      const n = d.tokens.length;
      for (let start = 0; start < n;) {
        const end = Math.min(n, start + this.window);
        windows.push({ doc, start, end });
        if (end === n) break;
        start = end - 2 * this.context;
      }
    });
    windows.sort((a, b) => a.end - a.start - (b.end - b.start));
    const classes = TAGGER_CLASSES.length;
    for (let i = 0; i < windows.length;) {
      // Sorted by length, so each batch pads to its last (longest) window.
      let j = i + 1;
      while (j < windows.length && (j + 1 - i) * (windows[j]!.end - windows[j]!.start) <= this.batchTokens) j++;
      const batch = windows.slice(i, j);
      const length = Math.max(1, batch[batch.length - 1]!.end - batch[batch.length - 1]!.start);
      const ids = new Int32Array(batch.length * length * FEATURE_SLOTS);
      batch.forEach((w, b) =>
        ids.set(features[w.doc]!.subarray(w.start * FEATURE_SLOTS, w.end * FEATURE_SLOTS), b * length * FEATURE_SLOTS),
      );
      const result = await this.session.run({
        ids: new ort.Tensor('int32', ids, [batch.length, length, FEATURE_SLOTS]),
      });
      const logProbs = result.logprobs!.data as Float32Array;
      batch.forEach((w, b) => {
        const n = docs[w.doc]!.tokens.length;
        // Each window decides the tokens away from its cut edges; its neighbour decides the rest.
        const keepFrom = w.start === 0 ? 0 : w.start + this.context;
        const keepTo = w.end === n ? n : w.end - this.context;
        out[w.doc]!.logProbs.set(
          logProbs.subarray((b * length + keepFrom - w.start) * classes, (b * length + keepTo - w.start) * classes),
          keepFrom * classes,
        );
      });
      i = j;
    }
    return out;
  }

  async release(): Promise<void> {
    await this.session.release();
  }

  private async flush(): Promise<void> {
    const pending = this.pending;
    this.pending = [];
    this.scheduled = false;
    try {
      const results = await this.logProbabilities(
        pending.map((p) => p.text),
        pending.map((p) => p.ruleSpans),
      );
      pending.forEach((p, i) =>
        p.resolve(decodeSpans(p.text, results[i]!.tokens, results[i]!.logProbs, this.threshold, this.thresholds)),
      );
    } catch (error) {
      for (const p of pending) p.reject(error);
    }
  }
}

/** US states and their codes: Safe Harbor keeps the state, and the gold leaves it out ("Boston, MA"). */
const STATES = new Set(Object.entries(US_STATES).flatMap(([code, name]) => [code.toLowerCase(), name.toLowerCase()]));

/** A word worth finding again: no English or medical word ("Will", "Mercy" found once must not take every "will"). */
const repeatable = (word: string) =>
  word.length >= 2 &&
  /^\p{L}+$/u.test(word) &&
  !ENGLISH_WORDS.has(word) &&
  !MEDICAL_TERMS.has(word) &&
  !NOT_NAMES.has(word);

/**
 * Tokens with P(O) < threshold (or their likeliest PHI class's own threshold) become PHI with
 * that class (but a US state or state code is no LOCATION). With `repeats`, a word the tagger found as a NAME or LOCATION is one wherever else
 * it occurs in the text ("transferred to GH ... GH team called"), unless it is an English or
 * medical word. Neighbours with the same class merge into one span when only a short separator
 * on the same line lies between them ("8/23", "St. Mary", "Harford Memorial").
 */
export function decodeSpans(
  text: string,
  tokens: readonly Token[],
  logProbs: Float32Array,
  threshold: number,
  thresholds: Thresholds = {},
  repeats = true,
): PhiSpan[] {
  const classes = TAGGER_CLASSES.length;
  const logThresholds = TAGGER_CLASSES.map((c) => Math.log(thresholds[c as PhiLabel] ?? threshold));
  const loosest = Math.max(...logThresholds.slice(1));
  const labels: (PhiLabel | undefined)[] = new Array(tokens.length);
  for (let t = 0; t < tokens.length; t++) {
    const row = t * classes;
    if (logProbs[row]! >= loosest) continue;
    let best = 1;
    for (let k = 2; k < classes; k++) if (logProbs[row + k]! > logProbs[row + best]!) best = k;
    const label = TAGGER_CLASSES[best] as PhiLabel;
    if (
      logProbs[row]! < logThresholds[best]! &&
      !(label === 'LOCATION' && STATES.has(text.slice(tokens[t]!.start, tokens[t]!.end).toLowerCase()))
    )
      labels[t] = label;
  }
  const repeated = new Set<number>();
  if (repeats) {
    const found = new Map<string, PhiLabel>();
    tokens.forEach(({ start, end }, t) => {
      const label = labels[t];
      const word = text.slice(start, end).toLowerCase();
      if ((label === 'NAME' || label === 'LOCATION') && repeatable(word)) found.set(word, label);
    });
    if (found.size > 0)
      tokens.forEach(({ start, end }, t) => {
        const label = labels[t] ? undefined : found.get(text.slice(start, end).toLowerCase());
        if (label) {
          labels[t] = label;
          repeated.add(t);
        }
      });
  }
  const spans: PhiSpan[] = [];
  for (let t = 0; t < tokens.length; t++) {
    const label = labels[t];
    if (!label) continue;
    const { start, end } = tokens[t]!;
    const last = spans[spans.length - 1];
    if (
      last &&
      last.label === label &&
      start - last.end <= 3 &&
      !/\n/.test(text.slice(last.end, start)) &&
      t > 0 &&
      tokens[t - 1]!.end === last.end
    )
      last.end = end;
    else spans.push({ start, end, label, rule: repeated.has(t) ? 'tagger_repeated' : 'tagger' });
  }
  return spans;
}
