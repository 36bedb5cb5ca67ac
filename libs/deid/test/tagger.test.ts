import { statSync } from 'node:fs';
import { join } from 'node:path';
import { RuleDetector, combineRuleAndTaggerSpans } from '../src';
import {
  DEFAULT_TAGGER_DIR,
  FEATURE_SLOTS,
  FeatureExtractor,
  PhiTagger,
  TAGGER_CLASSES,
  decodeSpans,
  tokenize,
} from '../src/tagger';
import { trainTagger } from '../train/train';
import type { LabelledText } from '../train/surrogates';

let tagger: PhiTagger;
beforeAll(async () => {
  tagger = await PhiTagger.load();
});
afterAll(async () => {
  await tagger.release();
});

const covers = (text: string, spans: { start: number; end: number }[], word: string) => {
  const at = text.indexOf(word);
  return spans.some((s) => s.start <= at && s.end >= at + word.length);
};

describe('PhiTagger (the shipped model)', () => {
  it('finds a surname in context and leaves clinical words alone', async () => {
    const text =
      'Pt seen by Dr. Kowalczyk this am, lungs clear, lasix 40mg given, family updated.\nNEURO: alert and oriented, follows commands.';
    const spans = await tagger.detect(text);
    expect(covers(text, spans, 'Kowalczyk')).toBe(true);
    for (const word of ['lasix', 'lungs', 'NEURO', 'alert', 'family']) expect(covers(text, spans, word)).toBe(false);
  });

  it('returns the same spans for calls batched in one tick as for calls made one at a time', async () => {
    const texts = [
      'Transferred from St. Agnes to CCU on 8/23.',
      'Wife Mary at bedside, phone 410-555-0199.',
      'No acute cardiopulmonary process.',
      'spoke with dr smith re plan',
    ];
    const together = await Promise.all(texts.map((t) => tagger.detect(t)));
    const alone: unknown[] = [];
    for (const t of texts) alone.push(await tagger.detect(t));
    expect(together).toEqual(alone);
    // The rules' spans handed in are the ones the tagger would have computed for its features.
    const rules = new RuleDetector();
    expect(await Promise.all(texts.map((t) => tagger.detect(t, rules.find(t))))).toEqual(together);
  });

  it('decides every token of a text longer than its window, with offsets into the whole text', async () => {
    // Windows of 40 tokens that decide 8 each (the context defaults to the model's receptive radius, 16).
    const small = await PhiTagger.load(DEFAULT_TAGGER_DIR, { window: 40 });
    try {
      const sentence = 'Pt stable overnight, HR 80s, BP 120/70, plan to transfer to floor. ';
      const text = `${sentence.repeat(20)}Seen by Dr. Kowalczyk on 8/23. ${sentence.repeat(20)}`;
      const [windowed, whole] = await Promise.all([small.detect(text), tagger.detect(text)]);
      expect(covers(text, windowed, 'Kowalczyk')).toBe(true);
      expect(windowed).toEqual(whole);
      for (const s of windowed) expect(text.slice(s.start, s.end)).toMatch(/^[\p{L}\p{N}]/u);
      // Not only the spans: every token's output is the one the uncut text gives it.
      const [cut] = await small.logProbabilities([text]);
      const [uncut] = await tagger.logProbabilities([text]);
      expect(cut!.tokens.length).toBeGreaterThan(400);
      expect(cut!.logProbs).toEqual(uncut!.logProbs);
    } finally {
      await small.release();
    }
  });

  it("refuses a context shorter than the model's receptive radius (cutting would change outputs)", async () => {
    await expect(PhiTagger.load(DEFAULT_TAGGER_DIR, { window: 40, context: 8 })).rejects.toThrow(
      "context 8 is shorter than the model's receptive radius (16 tokens)",
    );
  });

  it('ships a model file of at most 30 MB', () => {
    expect(statSync(join(DEFAULT_TAGGER_DIR, 'model.onnx')).size).toBeLessThanOrEqual(30 * 1024 * 1024);
  });
});

describe('tagger features and decoding', () => {
  it('tells each token which rule span covers it (the rules stacked into the tagger)', () => {
    const features = new FeatureExtractor(1 << 12);
    const text = 'Seen by Dr. Kowalczyk today.';
    const tokens = tokenize(text);
    const withRules = new Int32Array(tokens.length * FEATURE_SLOTS);
    const without = new Int32Array(tokens.length * FEATURE_SLOTS);
    features.featurize(features.prepare(text, tokens), 0, tokens.length, withRules);
    features.featurize(features.prepare(text, tokens, []), 0, tokens.length, without);
    const surname = tokens.findIndex((t) => text.slice(t.start, t.end) === 'Kowalczyk');
    const slot = (ids: Int32Array, t: number, k: number) => ids[t * FEATURE_SLOTS + k];
    expect(slot(withRules, surname, 10)).not.toBe(slot(without, surname, 10));
    expect(slot(withRules, 0, 10)).toBe(slot(without, 0, 10));
  });

  it('gives a range of tokens the features they have in the whole text (separators and line starts included)', () => {
    const features = new FeatureExtractor(1 << 12);
    const text = 'NEURO: alert,  oriented x3.\nPlan:\n  transfer to 4 North\t(Dr. Kowalczyk) 8/23';
    const doc = features.prepare(text, tokenize(text));
    const n = doc.tokens.length;
    const whole = new Int32Array(n * FEATURE_SLOTS);
    features.featurize(doc, 0, n, whole);
    for (const [from, to] of [
      [1, 4],
      [5, n],
      [n - 1, n],
    ] as const) {
      const part = new Int32Array((to - from) * FEATURE_SLOTS);
      features.featurize(doc, from, to, part);
      expect(part).toEqual(whole.subarray(from * FEATURE_SLOTS, to * FEATURE_SLOTS));
    }
  });

  it('decodes with a threshold per class', () => {
    const text = 'Smith Boston';
    const tokens = tokenize(text);
    const k = TAGGER_CLASSES.length;
    const logProbs = new Float32Array(tokens.length * k).fill(Math.log(0.01));
    // P(O) = 0.6 for both; the first is a NAME, the second a LOCATION.
    logProbs[0] = Math.log(0.6);
    logProbs[1] = Math.log(0.35);
    logProbs[k] = Math.log(0.6);
    logProbs[k + 2] = Math.log(0.35);
    expect(decodeSpans(text, tokens, logProbs, 0.8).map((s) => s.label)).toEqual(['NAME', 'LOCATION']);
    expect(decodeSpans(text, tokens, logProbs, 0.8, { LOCATION: 0.5 }).map((s) => s.label)).toEqual(['NAME']);
  });

  it('finds a name again wherever else it occurs in the text, but not an English word', () => {
    const text = 'Kowalczyk will call; kowalczyk will come';
    const tokens = tokenize(text);
    const k = TAGGER_CLASSES.length;
    const logProbs = new Float32Array(tokens.length * k).fill(Math.log(0.001));
    tokens.forEach((_, t) => (logProbs[t * k] = Math.log(0.99)));
    // The first two tokens are NAMEs to the model; their other occurrences are not.
    for (const t of [0, 1]) {
      logProbs[t * k] = Math.log(0.1);
      logProbs[t * k + 1] = Math.log(0.9);
    }
    const found = decodeSpans(text, tokens, logProbs, 0.8).map((s) => text.slice(s.start, s.end));
    expect(found).toEqual(['Kowalczyk will', 'kowalczyk']);
    expect(decodeSpans(text, tokens, logProbs, 0.8, {}, false).map((s) => text.slice(s.start, s.end))).toEqual([
      'Kowalczyk will',
    ]);
  });

  it("keeps every rule span and adds only the tagger's names and places", () => {
    const rules = [
      { start: 0, end: 5, label: 'NAME' as const, rule: 'a' },
      { start: 10, end: 15, label: 'NAME' as const, rule: 'b' },
      { start: 20, end: 25, label: 'DATE' as const, rule: 'c' },
    ];
    const tagger = [
      { start: 0, end: 5, label: 'NAME' as const, rule: 'tagger' },
      { start: 30, end: 35, label: 'LOCATION' as const, rule: 'tagger' },
      { start: 40, end: 45, label: 'DATE' as const, rule: 'tagger' },
    ];
    expect(combineRuleAndTaggerSpans('x'.repeat(50), rules, tagger).map((s) => s.start)).toEqual([0, 10, 20, 30]);
  });
});

describe('trainTagger', () => {
  it('reduces the loss on a tiny corpus', async () => {
    const note = (name: string, date: string): LabelledText => {
      const text = `Seen by Dr. ${name} on ${date}, lungs clear. Family meeting with ${name} planned.`;
      const spans = [text.indexOf(name), text.lastIndexOf(name)].map((start) => ({
        start,
        end: start + name.length,
        label: 'NAME' as const,
      }));
      const d = text.indexOf(date);
      return { text, spans: [...spans, { start: d, end: d + date.length, label: 'DATE' as const }] };
    };
    const notes = [note('Brown', '8/23'), note('GARCIA', '10/2'), note('lee', '3/14')];
    const negatives: LabelledText[] = [
      {
        text: 'No acute cardiopulmonary abnormality. Heart size normal. XXXX opacity.',
        spans: [],
        ignore: [{ start: 58, end: 62 }],
      },
    ];
    const config = { buckets: 1024, dim: 8, channels: 8, layers: [{ kernel: 3, dilation: 1 }] };
    const { losses } = await trainTagger({
      notes,
      negatives,
      negativesPerEpoch: 1,
      config,
      epochs: 40,
      seed: 3,
      threshold: 0.8,
      batchSize: 4,
      windowTokens: 32,
      learningRate: 0.02,
      threads: 1,
    });
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    expect(mean(losses.slice(-5))).toBeLessThan(0.5 * mean(losses.slice(0, 5)));
  });
});
