// npm run conformance -- --service <anonymizer|synthesizer|pretrainer|evaluator> --target host:port
// Runs the contract's conformance checks against any implementation; exit code 0 when all pass.
import { parseArgs } from 'node:util';
import { CONTRACTS, type ContractName } from './checks';
import { runConformance } from './runner';

const USAGE = `usage: npm run conformance -- --service <${Object.keys(CONTRACTS).join('|')}> --target host:port`;

async function main(): Promise<number> {
  let values: { service?: string; target?: string; help?: boolean };
  try {
    ({ values } = parseArgs({ options: { service: { type: 'string' }, target: { type: 'string' }, help: { type: 'boolean' } } }));
  } catch (error) {
    console.error(`${(error as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (!values.service || !(values.service in CONTRACTS)) {
    console.error(`--service must be one of ${Object.keys(CONTRACTS).join(', ')} (got ${JSON.stringify(values.service ?? '')})\n${USAGE}`);
    return 2;
  }
  if (!values.target || !/^[^\s:]+:\d+$/.test(values.target)) {
    console.error(`--target must be host:port (got ${JSON.stringify(values.target ?? '')})\n${USAGE}`);
    return 2;
  }
  const results = await runConformance(values.service as ContractName, values.target);
  for (const r of results) console.log(`${r.passed ? 'PASS' : 'FAIL'} ${r.name} (${r.durationMs} ms)${r.error ? `\n     ${r.error.replaceAll('\n', '\n     ')}` : ''}`);
  const failed = results.filter((r) => !r.passed).length;
  console.log(`${values.service} at ${values.target}: ${results.length - failed} of ${results.length} checks passed`);
  return failed === 0 ? 0 : 1;
}

main().then((code) => process.exit(code));
