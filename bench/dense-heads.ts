// node --conditions=medsyn-source --import tsx bench/dense-heads.ts [--variants group,batch,none,group-raw,group-min1] [--fractions 0.01,0.1,1]
// Ablation of the evaluator's dense heads on ../shared/data/covid-cxr with the replication's
// random-init encoder (examples/evaluate/random-init-dense.yaml: ResNet-18 width 16 at 64 px,
// seed 1; split seed 0; seeds 0, 1, 2; 20 epochs): segmentation Dice and detection
// mAP@[.40:.75] per label fraction, mean ± sample std over seeds, for each head variant.
// A variant is the decoder's norm (batch / group / none), then `-raw` for unstandardised maps
// and `-min<N>` for at least N optimizer steps per epoch (default 8; `batch-raw-min1` is the
// heads as they were before #18).
// Last line: RESULT {json}.
import { runEvaluation } from '@medsyn/evaluation';
import type { DecoderNorm } from '@medsyn/model-zoo';
import * as path from 'node:path';
import { watchLoad } from './machine';

const DATA = path.resolve(__dirname, '../../shared/data/covid-cxr');
const arg = (name: string, fallback: string) => {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 ? process.argv[at + 1]! : fallback;
};

async function main() {
  const variants = arg('variants', 'group,batch,none,group-raw,group-min1').split(',');
  const fractions = arg('fractions', '0.01,0.1,1').split(',').map(Number);
  const load = watchLoad(2);
  const result: Record<string, Record<string, { mean: number; std: number; values: number[] }>> = {};
  for (const variant of variants) {
    const [norm, ...flags] = variant.split('-') as [DecoderNorm, ...string[]];
    const minSteps = flags.find((f) => f.startsWith('min'));
    const t0 = performance.now();
    const { results } = await runEvaluation(
      {
        encoders: [
          {
            name: 'random-init',
            baseline: { architecture: 'resnet18', size: 64, width: 16, seed: 1 },
            pretraining_data: 'random',
          },
        ],
        dataset: { format: 'covid_cxr', root: DATA },
        tasks: ['segmentation', 'detection'],
        label_fractions: fractions,
        seeds: [0, 1, 2],
        split_seed: 0,
      },
      {
        denseHeads: {
          decoderNorm: norm,
          standardise: !flags.includes('raw'),
          minStepsPerEpoch: minSteps ? Number(minSteps.slice(3)) : undefined,
        },
        log: (line) => console.log(`  ${variant}: ${line}`),
      },
    );
    result[variant] = Object.fromEntries(
      results.metrics
        .filter((m) => m.metric === 'dice' || m.metric === 'map_40_75')
        .map((m) => [
          `${m.task}/${m.label_fraction}`,
          { mean: +m.mean.toFixed(3), std: +m.std.toFixed(3), values: m.per_seed.map((v) => +v.toFixed(4)) },
        ]),
    );
    console.log(`${variant}: ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  }
  console.log(
    `| variant | ${fractions.map((f) => `Dice ${f * 100} %`).join(' | ')} | ${fractions.map((f) => `mAP ${f * 100} %`).join(' | ')} |`,
  );
  console.log(
    `|---|${fractions
      .map(() => '---|')
      .join('')
      .repeat(2)}`,
  );
  const cell = (v: { mean: number; std: number } | undefined) =>
    v ? `${v.mean.toFixed(3)} ± ${v.std.toFixed(3)}` : '-';
  for (const variant of variants) {
    const r = result[variant]!;
    console.log(
      `| ${variant} | ${fractions.map((f) => cell(r[`segmentation/${f}`])).join(' | ')} | ${fractions.map((f) => cell(r[`detection/${f}`])).join(' | ')} |`,
    );
  }
  console.log(`RESULT ${JSON.stringify({ variants: result, ...load.report() })}`);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
