import { RuleDetector } from './src';
import { readGold } from './eval/gold-format';
const d = new RuleDetector();
const gold = readGold('../../tmp/gold-pii-synth.jsonl');
const missed: Record<string, string[]> = {};
for (const r of gold) { const p = d.detect(r.text); for (const s of r.spans) { if (!p.some((x) => x.start < s.end && x.end > s.start)) (missed[s.label] ??= []).push(r.text.slice(s.start, s.end) + '  ||  ' + r.text.slice(Math.max(0, s.start - 40), s.start).replace(/\n/g, ' ')); } }
for (const [k, v] of Object.entries(missed)) { console.log(k, v.length); for (const x of v.filter((_, i) => i % Math.ceil(v.length / 25) === 0)) console.log('   ', x); }
