// npm run bench:anonymizer — the anonymizer's quality and speed against the targets:
//   quality on a held-out synthetic radiology gold corpus (seed 2; tuning used seed 1), on Presidio's
//   pii-synth sentences (general English, out of domain) and over-redaction of IU X-ray reports;
//   in-process detection and full anonymization throughput on one core (MB/s of report text);
//   reports/s through the gRPC bidirectional stream of the real service, run as its own process.
// No de-identifier peer can run offline here (Presidio and PhysioNet deid need downloads), so the
// reference figures printed next to ours are the published ones from the issue, marked as such.
// Last line: RESULT {json}.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { countTokens } from '@medsyn/clip-tokenizer';
import { Anonymizer, RuleDetector } from '@medsyn/deid';
import { anonymizer as proto } from '@medsyn/proto';
import { makeTempDir, repoRoot, startProcess, tsxLoaderArgs } from '@medsyn/testing';
import { generateGold } from '../libs/deid/eval/generate-gold';
import { readGold } from '../libs/deid/eval/gold-format';
import { evaluate, overRedaction, readIuReports } from '../libs/deid/eval/scoring';

const DATA = path.resolve(repoRoot, '../shared/data');
const IU_CSV = path.join(DATA, 'iu-xray/indiana_reports.csv');
const PII_SYNTH = path.join(DATA, 'pii-synth/synth_dataset_v2.json');
const TARGETS = { recall: 0.995, precision: 0.97, overRedaction: 0.005, mbPerSecond: 5, streamReportsPerSecond: 2000 };
const PUBLISHED = { physionetDeid: { recall: 0.967, precision: 0.749 } };

const pct = (x: number) => `${(100 * x).toFixed(2)}%`;

/**
 * Best of `rounds` timed passes; each pass gets a fresh runner, so no cache carries over. The
 * machine is shared, so both wall-clock and CPU-time rates are given: the CPU-time rate (bytes
 * per second of this process's CPU) is the per-core figure, the wall-clock one what this run saw.
 */
function throughput(texts: string[], makeRun: () => (text: string) => void, rounds = 5): { mbPerSecond: number; mbPerCpuSecond: number; reportsPerSecond: number } {
  const bytes = texts.reduce((sum, t) => sum + Buffer.byteLength(t), 0);
  let [wall, cpu] = [Infinity, Infinity];
  for (let r = 0; r < rounds; r++) {
    const run = makeRun();
    const usage = process.cpuUsage();
    const started = performance.now();
    for (const t of texts) run(t);
    wall = Math.min(wall, (performance.now() - started) / 1000);
    const used = process.cpuUsage(usage);
    cpu = Math.min(cpu, (used.user + used.system) / 1e6);
  }
  return { mbPerSecond: bytes / 1e6 / wall, mbPerCpuSecond: bytes / 1e6 / cpu, reportsPerSecond: texts.length / wall };
}

async function streamThroughput(texts: string[], count: number): Promise<number> {
  const tmp = makeTempDir('bench-anonymizer');
  const service = await startProcess(process.execPath, {
    args: [...tsxLoaderArgs(), path.join(repoRoot, 'services/anonymizer/src/main.ts')],
    env: { GRPC_HOST: '127.0.0.1', GRPC_PORT: '0', METRICS_HOST: '127.0.0.1', METRICS_PORT: '0', MEDSYN_STORE: `file://${tmp.dir}`, LOG_LEVEL: 'info' },
    readyWhen: /"grpcPort":(\d+)/,
    readyTimeoutMs: 60000,
  });
  const client = new proto.AnonymizerServiceClient(`127.0.0.1:${service.readyMatch![1]}`, grpc.credentials.createInsecure());
  try {
    const run = async (n: number) => {
      const call = client.anonymizeStream();
      let received = 0;
      const ended = new Promise<void>((resolve, reject) => {
        call.on('end', resolve);
        call.on('error', reject);
      });
      call.on('data', () => received++);
      const started = performance.now();
      for (let i = 0; i < n; i++) {
        const request = proto.AnonymizeStreamRequest.fromPartial({ report: { id: String(i), text: texts[i % texts.length]! }, options: i === 0 ? { omitSpans: true } : undefined });
        if (!call.write(request)) await new Promise((resolve) => call.once('drain', resolve));
      }
      call.end();
      await ended;
      if (received !== n) throw new Error(`stream answered ${received} of ${n}`);
      return n / ((performance.now() - started) / 1000);
    };
    await run(500); // warm-up: CLIP vocabulary, JIT
    return Math.max(await run(count), await run(count));
  } finally {
    client.close();
    await service.stop();
    tmp.remove();
  }
}

async function main(): Promise<void> {
  const detector = new RuleDetector();
  const gold = generateGold(2, 2000);
  const quality = evaluate(detector, gold);
  console.log(`gold (synthetic radiology, seed 2, ${gold.length} reports, ${quality.overall.goldTokens} PHI tokens): recall ${pct(quality.overall.recall)}, precision ${pct(quality.overall.precision)}, F1 ${pct(quality.overall.f1)}; label-exact recall ${pct(quality.overall.recallExact)}, precision ${pct(quality.overall.precisionExact)}`);
  for (const [label, s] of Object.entries(quality.byLabel)) console.log(`  ${label.padEnd(9)} recall ${pct(s.recall)}  precision ${pct(s.precision)}  (${s.goldTokens} tokens)`);

  // pii-synth in two halves fixed by seed 1: rules were tuned on the first, the second is held out.
  let piiSynth: ReturnType<typeof evaluate> | undefined;
  let piiSynthTune: ReturnType<typeof evaluate> | undefined;
  if (fs.existsSync(PII_SYNTH)) {
    const converted = path.join(makeTempDir('bench-pii').dir, 'pii-synth.jsonl');
    const { execFileSync } = await import('node:child_process');
    execFileSync(process.execPath, [...tsxLoaderArgs(), path.join(repoRoot, 'libs/deid/eval/pii-synth-to-gold.ts'), PII_SYNTH, converted, '--split-seed', '1']);
    piiSynth = evaluate(detector, readGold(converted.replace(/\.jsonl$/, '.held-out.jsonl')));
    piiSynthTune = evaluate(detector, readGold(converted.replace(/\.jsonl$/, '.tune.jsonl')));
    console.log(`pii-synth held-out half (Presidio, general English, out of domain, ${piiSynth.overall.goldTokens} PHI tokens): recall ${pct(piiSynth.overall.recall)}, precision ${pct(piiSynth.overall.precision)}, F1 ${pct(piiSynth.overall.f1)}`);
    for (const [label, s] of Object.entries(piiSynth.byLabel)) if (s.goldTokens) console.log(`  ${label.padEnd(9)} recall ${pct(s.recall)}  precision ${pct(s.precision)}  (${s.goldTokens} tokens)`);
    console.log(`pii-synth tuning half: recall ${pct(piiSynthTune.overall.recall)}, precision ${pct(piiSynthTune.overall.precision)}, F1 ${pct(piiSynthTune.overall.f1)}`);
  }

  const iu = fs.existsSync(IU_CSV) ? readIuReports(IU_CSV) : gold.map((g) => g.text);
  const over = fs.existsSync(IU_CSV) ? overRedaction(detector, iu) : undefined;
  if (over) console.log(`IU X-ray over-redaction: ${over.redacted} of ${over.tokens} tokens (${pct(over.share)}), by rule ${JSON.stringify(over.byRule)}`);

  const goldTexts = gold.map((g) => g.text);
  for (const t of iu.slice(0, 500)) detector.detect(t); // JIT warm-up
  const detectIu = throughput(iu, () => (t) => detector.detect(t));
  const detectGold = throughput(goldTexts, () => (t) => detector.detect(t));
  countTokens('warm-up'); // loads CLIP's vocabulary once
  const anonymize = () => {
    // A fresh counter: the prompt builder's word cache starts empty in every pass.
    const anonymizer = new Anonymizer({ tokenCounter: { countTokens } });
    return (t: string) => void anonymizer.anonymize({ id: 'b', text: t }, 'mask');
  };
  const fullIu = throughput(iu, anonymize);
  const rate = (r: ReturnType<typeof throughput>) => `${r.mbPerSecond.toFixed(2)} MB/s wall (${r.reportsPerSecond.toFixed(0)} reports/s), ${r.mbPerCpuSecond.toFixed(2)} MB per CPU-second`;
  console.log(`in-process, one thread: detection on IU reports ${rate(detectIu)}; on PHI-dense gold ${rate(detectGold)}; full anonymize (mask + sections + CLIP prompt) on IU ${rate(fullIu)}`);

  const stream = await streamThroughput(iu, 5000);
  console.log(`gRPC AnonymizeStream (service in its own process, IU reports, spans omitted): ${stream.toFixed(0)} reports/s`);

  const ratio = (x: number, target: number) => Number((x / target).toFixed(3));
  const result = {
    recall: quality.overall.recall,
    precision: quality.overall.precision,
    f1: quality.overall.f1,
    recall_exact: quality.overall.recallExact,
    precision_exact: quality.overall.precisionExact,
    tokens: quality.tokens,
    gold_phi_tokens: quality.overall.goldTokens,
    pii_synth: piiSynth ? { recall: piiSynth.overall.recall, precision: piiSynth.overall.precision, f1: piiSynth.overall.f1, half: 'held-out (seed 1)' } : undefined,
    pii_synth_tune: piiSynthTune ? { recall: piiSynthTune.overall.recall, precision: piiSynthTune.overall.precision, f1: piiSynthTune.overall.f1 } : undefined,
    over_redaction: over?.share,
    over_redaction_tokens: over?.tokens,
    detect_mb_per_s_iu: detectIu.mbPerSecond,
    detect_mb_per_cpu_s_iu: detectIu.mbPerCpuSecond,
    detect_mb_per_s_gold: detectGold.mbPerSecond,
    detect_mb_per_cpu_s_gold: detectGold.mbPerCpuSecond,
    anonymize_mb_per_s_iu: fullIu.mbPerSecond,
    anonymize_mb_per_cpu_s_iu: fullIu.mbPerCpuSecond,
    stream_reports_per_s: stream,
    vs_target: {
      recall: ratio(quality.overall.recall, TARGETS.recall),
      precision: ratio(quality.overall.precision, TARGETS.precision),
      detect_mb_per_s: ratio(detectIu.mbPerSecond, TARGETS.mbPerSecond),
      detect_mb_per_cpu_s: ratio(detectIu.mbPerCpuSecond, TARGETS.mbPerSecond),
      anonymize_mb_per_cpu_s: ratio(fullIu.mbPerCpuSecond, TARGETS.mbPerSecond),
      stream_reports_per_s: ratio(stream, TARGETS.streamReportsPerSecond),
    },
    published_reference: PUBLISHED,
    load_average: (await import('node:os')).loadavg()[0],
  };
  console.log(`RESULT ${JSON.stringify(result)}`);
}

void main();
