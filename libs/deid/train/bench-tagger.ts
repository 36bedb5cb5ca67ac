/**
 * Speed of the tagger, alone and with the rules, on one onnxruntime thread:
 *
 *   node --conditions=medsyn-source --import tsx libs/deid/train/bench-tagger.ts [--model DIR]
 *
 * Every text of a corpus is submitted in one tick (as a gRPC stream's batch would be) and the
 * wall time until the last span list is back is measured; the best of three runs after a warm-up.
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { sharedDataDir } from '@medsyn/testing';
import { RuleDetector, combineRuleAndTaggerSpans, type PhiDetector } from '../src';
import { readGold } from '../eval/gold-format';
import { readIuReports } from '../eval/scoring';
import { DEFAULT_TAGGER_DIR, PhiTagger } from '../src/tagger';

const { values } = parseArgs({
  options: {
    model: { type: 'string', default: DEFAULT_TAGGER_DIR },
    gold: { type: 'string', default: join(sharedDataDir, 'physionet-deid-dev/gold.jsonl') },
    iu: { type: 'string', default: join(sharedDataDir, 'iu-xray/indiana_reports.csv') },
  },
});

async function bestOf(detector: PhiDetector, texts: string[]): Promise<number> {
  await Promise.all(texts.map((t) => detector.detect(t)));
  let best = Infinity;
  for (let run = 0; run < 3; run++) {
    const started = process.hrtime.bigint();
    await Promise.all(texts.map((t) => detector.detect(t)));
    best = Math.min(best, Number(process.hrtime.bigint() - started) / 1e9);
  }
  return best;
}

async function main() {
  const tagger = await PhiTagger.load(values.model, { threads: 1 });
  const rules = new RuleDetector();
  const corpora = {
    'physionet dev notes': readGold(values.gold).map((r) => r.text),
    'IU reports': readIuReports(values.iu),
  };
  const result: Record<string, Record<string, number>> = {};
  for (const [name, texts] of Object.entries(corpora)) {
    const megabytes = texts.reduce((n, t) => n + Buffer.byteLength(t), 0) / 1e6;
    const row: Record<string, number> = { megabytes, texts: texts.length };
    // The anonymizer's combination: rules_and_tagger hands the rules' spans to the tagger (one rules run a text);
    // rules_twice lets the tagger run the rules again for its features.
    const both: PhiDetector = {
      detect: async (text) => {
        const ruleSpans = rules.find(text);
        return combineRuleAndTaggerSpans(text, ruleSpans, await tagger.detect(text, ruleSpans));
      },
    };
    const twice: PhiDetector = {
      detect: async (text) => combineRuleAndTaggerSpans(text, rules.find(text), await tagger.detect(text)),
    };
    for (const [label, detector] of Object.entries({ tagger, rules, rules_and_tagger: both, rules_twice: twice })) {
      const seconds = await bestOf(detector, texts);
      row[`${label}_mb_per_s`] = megabytes / seconds;
      row[`${label}_texts_per_s`] = texts.length / seconds;
    }
    result[name] = row;
    console.log(
      `${name}: ${texts.length} texts, ${megabytes.toFixed(2)} MB: tagger ${row.tagger_mb_per_s!.toFixed(2)} MB/s, rules ${row.rules_mb_per_s!.toFixed(2)} MB/s, rules+tagger ${row.rules_and_tagger_mb_per_s!.toFixed(2)} MB/s (${row.rules_and_tagger_texts_per_s!.toFixed(0)} texts/s; ${row.rules_twice_mb_per_s!.toFixed(2)} MB/s when the tagger runs the rules again)`,
    );
  }
  await tagger.release();
  console.log(`RESULT ${JSON.stringify(result)}`);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
