// npm run conformance -- --service <anonymizer|synthesizer|pretrainer|evaluator> --target host:port
//   [--token-file FILE] [--tls-ca FILE [--tls-cert FILE --tls-key FILE]] [--plaintext]
// Runs the contract's conformance checks against any implementation; exit code 0 when all pass.
import * as fs from 'node:fs';
import { parseArgs } from 'node:util';
import { clientSecurity, tokenGoesInClear, type ClientSecurity } from '@medsyn/pipeline';
import { CONTRACTS, type ContractName } from './checks';
import { runConformance } from './runner';

const USAGE = `usage: npm run conformance -- --service <${Object.keys(CONTRACTS).join('|')}> --target host:port [options]
  --token-file FILE   bearer token for a service started with GRPC_AUTH_TOKEN(_FILE); default: the
                      file GRPC_AUTH_TOKEN_FILE names, else GRPC_AUTH_TOKEN, else no token
  --tls-ca FILE       speak TLS, trusting this CA (the service's GRPC_TLS_CERT is signed by it)
  --tls-cert FILE, --tls-key FILE
                      a client certificate, for a service that asks for one (GRPC_TLS_CLIENT_CA)
  --plaintext         send the token without TLS to a host other than loopback`;

const OPTIONS = {
  service: { type: 'string' },
  target: { type: 'string' },
  'token-file': { type: 'string' },
  'tls-ca': { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  plaintext: { type: 'boolean' },
  help: { type: 'boolean' },
} as const;

/** A usage mistake: exit code 2 and the message. */
class UsageError extends Error {}

/** The bearer token: --token-file, else the client side of the services' own variables. */
function readToken(file: string | undefined, env: NodeJS.ProcessEnv): string | undefined {
  if (!file && env.GRPC_AUTH_TOKEN && env.GRPC_AUTH_TOKEN_FILE)
    throw new UsageError('set GRPC_AUTH_TOKEN or GRPC_AUTH_TOKEN_FILE, not both (or give --token-file)');
  const from = file ?? env.GRPC_AUTH_TOKEN_FILE;
  if (from === undefined) return env.GRPC_AUTH_TOKEN || undefined;
  let token: string;
  try {
    // Trimmed as the services trim GRPC_AUTH_TOKEN_FILE: a file written by echo ends in a newline.
    token = fs.readFileSync(from, 'utf8').trim();
  } catch (error) {
    throw new UsageError(
      `${file ? '--token-file' : 'GRPC_AUTH_TOKEN_FILE'}: cannot read ${from} (${(error as NodeJS.ErrnoException).code})`,
    );
  }
  if (!token) throw new UsageError(`${file ? '--token-file' : 'GRPC_AUTH_TOKEN_FILE'}: ${from} is empty`);
  return token;
}

function security(
  values: {
    target: string;
    'token-file'?: string;
    'tls-ca'?: string;
    'tls-cert'?: string;
    'tls-key'?: string;
    plaintext?: boolean;
  },
  env: NodeJS.ProcessEnv,
): ClientSecurity {
  const { 'tls-ca': ca, 'tls-cert': cert, 'tls-key': key } = values;
  if ((cert || key) && !ca) throw new UsageError('--tls-cert and --tls-key need --tls-ca');
  if (Boolean(cert) !== Boolean(key))
    throw new UsageError('a client certificate needs both --tls-cert and --tls-key (mutual TLS)');
  for (const [flag, file] of [
    ['--tls-ca', ca],
    ['--tls-cert', cert],
    ['--tls-key', key],
  ] as const) {
    if (file && !fs.existsSync(file)) throw new UsageError(`${flag}: file not found: ${file}`);
  }
  const token = readToken(values['token-file'], env);
  if (token && !ca && !values.plaintext && tokenGoesInClear(values.target)) {
    throw new UsageError(
      `the token would go to ${values.target} in clear; give --tls-ca (or --plaintext on a network you trust)`,
    );
  }
  return { ...(ca && { tls: { ca, ...(cert && { cert }), ...(key && { key }) } }), ...(token && { token }) };
}

async function main(env: NodeJS.ProcessEnv): Promise<number> {
  let values: {
    service?: string;
    target?: string;
    'token-file'?: string;
    'tls-ca'?: string;
    'tls-cert'?: string;
    'tls-key'?: string;
    plaintext?: boolean;
    help?: boolean;
  };
  try {
    ({ values } = parseArgs({ options: OPTIONS }));
  } catch (error) {
    console.error(`${(error as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (!values.service || !(values.service in CONTRACTS)) {
    console.error(
      `--service must be one of ${Object.keys(CONTRACTS).join(', ')} (got ${JSON.stringify(values.service ?? '')})\n${USAGE}`,
    );
    return 2;
  }
  if (!values.target || !/^[^\s:]+:\d+$/.test(values.target)) {
    console.error(`--target must be host:port (got ${JSON.stringify(values.target ?? '')})\n${USAGE}`);
    return 2;
  }
  let connection: ReturnType<typeof clientSecurity>;
  try {
    connection = clientSecurity(security({ ...values, target: values.target }, env));
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`${error.message}\n${USAGE}`);
    return 2;
  }
  const results = await runConformance(values.service as ContractName, values.target, connection);
  for (const r of results)
    console.log(
      `${r.passed ? 'PASS' : 'FAIL'} ${r.name} (${r.durationMs} ms)${r.error ? `\n     ${r.error.replaceAll('\n', '\n     ')}` : ''}`,
    );
  const failed = results.filter((r) => !r.passed).length;
  console.log(`${values.service} at ${values.target}: ${results.length - failed} of ${results.length} checks passed`);
  return failed === 0 ? 0 : 1;
}

main(process.env).then((code) => process.exit(code));
