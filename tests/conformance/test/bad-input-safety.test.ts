import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { anonymizer, common, evaluator, jobs, pretrainer, synthesizer } from '@medsyn/proto';
import { makeTempDir, makeTlsFixture, repoRoot, startProcess, tsxLoaderArgs } from '@medsyn/testing';
import { startLocalServices, type LocalServices } from '../src';
import { healthy, unary } from './probes';

// Hostile inputs and settings from issue #15 (safe by default, output prefixes, anonymizer input)
// against the real services on loopback: each gets its clear error, the service keeps answering
// health checks within a second, and nothing lands outside the prefix a request owns.
// The anonymizer runs its rules alone here: the probes are about the service, not the tagger.
const tmp = makeTempDir('bad-input-safety');
const storeDir = path.join(tmp.dir, 'store');
const dataRoot = path.join(tmp.dir, 'datasets');
const PHI_ID = 'John Smith 555-123-4567';
const REPORT = 'FINDINGS: Discussed with Dr. Okafor on 3/4/2021. MRN 12345678.\nIMPRESSION: No acute process.\n';
const MAX_REPORT_BYTES = 4 * 1024 * 1024;
let local: LocalServices;

beforeAll(async () => {
  fs.mkdirSync(dataRoot, { recursive: true });
  local = await startLocalServices(['anonymizer', 'evaluator', 'synthesizer', 'pretrainer'], {
    MEDSYN_STORE: `file://${storeDir}`,
    EVALUATOR_DATASET_ROOTS: dataRoot,
    ANONYMIZER_DETECTOR: 'rules',
    ANONYMIZER_MAX_REPORT_BYTES: String(MAX_REPORT_BYTES),
  });
}, 120000);
afterAll(async () => {
  await local?.stop();
  tmp.remove();
});

type Name = 'anonymizer' | 'evaluator' | 'synthesizer' | 'pretrainer';
const target = (name: Name) => local.services.get(name)!.target;
const options = { 'grpc.max_send_message_length': -1, 'grpc.max_receive_message_length': -1 };
/** Every file in the store, relative to it. */
function storeFiles(): string[] {
  if (!fs.existsSync(storeDir)) return [];
  // .meta/ and .tmp/ are the file store's own: each key's digest and media type, writes in flight.
  return (fs.readdirSync(storeDir, { recursive: true }) as string[])
    .filter((f) => !/^\.(meta|tmp)\//.test(f) && fs.statSync(path.join(storeDir, f)).isFile())
    .sort();
}
/** Files added since `before`, outside the allowed prefixes (the job registry is always allowed). */
const addedOutside = (before: string[], allowed: string[] = []) =>
  storeFiles().filter((f) => !before.includes(f) && !['jobs/', ...allowed].some((p) => f.startsWith(p)));
const put = (key: string, text: string) => {
  fs.mkdirSync(path.dirname(path.join(storeDir, key)), { recursive: true });
  fs.writeFileSync(path.join(storeDir, key), text);
  return pathToFileURL(path.join(storeDir, key)).href;
};

/** One unary call on a client of the named service, closed afterwards. */
function withUnary<C extends grpc.Client>(
  Client: new (address: string, credentials: grpc.ChannelCredentials) => C,
  name: Name,
  method: string,
  request: unknown,
): Promise<unknown> {
  const client = new Client(target(name), grpc.credentials.createInsecure());
  return unary(client, method, request).finally(() => client.close());
}

function watchToEnd(name: Name, jobId: string): Promise<common.Job> {
  const client = new jobs.JobServiceClient(target(name), grpc.credentials.createInsecure());
  let last: common.Job | undefined;
  return new Promise<common.Job>((resolve, reject) => {
    const call = client.watchJob({ jobId });
    call.on('data', (r: jobs.WatchJobResponse) => (last = r.job));
    call.on('end', () => (client.close(), resolve(last!)));
    call.on('error', reject);
  });
}

describe('output prefixes on every service', () => {
  const hostile = ['jobs/anonymizer/', 'jobs/synthesizer/', 'jobs/', '../outside/', '/etc/', 'a/../../b/'];
  const starts: Record<Name, (requestId: string, outputPrefix: string) => Promise<unknown>> = {
    anonymizer: (requestId, outputPrefix) => {
      const client = new anonymizer.AnonymizerServiceClient(target('anonymizer'), grpc.credentials.createInsecure());
      const input = { uri: put('inputs/one.jsonl', `${JSON.stringify({ id: 'r1', text: REPORT })}\n`) };
      return unary(
        client,
        'startAnonymizeDataset',
        anonymizer.StartAnonymizeDatasetRequest.fromPartial({ requestId, input, outputPrefix }),
      ).finally(() => client.close());
    },
    synthesizer: (requestId, outputPrefix) => {
      const client = new synthesizer.SynthesizerServiceClient(target('synthesizer'), grpc.credentials.createInsecure());
      const prompts = { uri: put('prompts/p.jsonl', '{"id":"a","prompt":"effusion"}\n') };
      return unary(
        client,
        'startSynthesizeDataset',
        synthesizer.StartSynthesizeDatasetRequest.fromPartial({
          requestId,
          prompts,
          params: { numInferenceSteps: 2 },
          outputPrefix,
        }),
      ).finally(() => client.close());
    },
    evaluator: (requestId, outputPrefix) => {
      const client = new evaluator.EvaluatorServiceClient(target('evaluator'), grpc.credentials.createInsecure());
      const config = {
        encoders: [{ name: 'random', baseline: { architecture: 'resnet18', size: 32, width: 4, seed: 1 } }],
        dataset: { format: 'csv', uri: pathToFileURL(dataRoot).href, options: { label_columns: 'positive' } },
        tasks: [evaluator.Task.TASK_CLASSIFICATION],
        labelFractions: [1],
        seeds: [0],
        epochs: 1,
      };
      return unary(
        client,
        'startEvaluation',
        evaluator.StartEvaluationRequest.fromPartial({ requestId, config, outputPrefix }),
      ).finally(() => client.close());
    },
    pretrainer: (requestId, outputPrefix) => {
      const client = new pretrainer.PretrainerServiceClient(target('pretrainer'), grpc.credentials.createInsecure());
      put('pairs/p.jsonl', '{"image":"x.png","text":"effusion"}\n');
      const config = pretrainer.PretrainingConfig.fromPartial({
        method: pretrainer.Method.METHOD_CONVIRT,
        imageEncoder: { architecture: 'resnet18', imageSize: 32, width: 8 },
        data: { realPairs: [{ uri: 'pairs/p.jsonl' }] },
        batchSize: 4,
        epochs: 1,
      });
      return unary(client, 'startPretraining', { requestId, config, outputPrefix }).finally(() => client.close());
    },
  };

  it.each(Object.keys(starts) as Name[])(
    '%s: refuses a prefix in the job registry, outside the store or with ".." as INVALID_ARGUMENT naming output_prefix, starting no job',
    async (name) => {
      const before = storeFiles();
      for (const prefix of hostile) {
        await expect(starts[name](`hostile-${name}-${prefix}`, prefix)).rejects.toMatchObject({
          code: grpc.status.INVALID_ARGUMENT,
          details: expect.stringContaining('output_prefix'),
        });
      }
      await healthy(target(name));
      // No job record, no planted file: the store holds only the inputs this test put there.
      expect(storeFiles().filter((f) => !before.includes(f) && !/^(inputs|prompts|pairs)\//.test(f))).toEqual([]);
    },
  );

  it('anonymizer: a second job with another input on an owned prefix is refused (FAILED_PRECONDITION naming output_prefix); the owner re-attaches and its results stay its own', async () => {
    const client = new anonymizer.AnonymizerServiceClient(target('anonymizer'), grpc.credentials.createInsecure());
    try {
      const a = { uri: put('inputs/a.jsonl', `${JSON.stringify({ id: 'a1', text: REPORT })}\n`) };
      const b = { uri: put('inputs/b.jsonl', `${JSON.stringify({ id: 'b1', text: 'IMPRESSION: Other patient.' })}\n`) };
      const owner = anonymizer.StartAnonymizeDatasetRequest.fromPartial({
        requestId: 'owner-a',
        input: a,
        outputPrefix: 'owned/run/',
      });
      const { job } = await unary<anonymizer.StartAnonymizeDatasetResponse>(client, 'startAnonymizeDataset', owner);
      expect((await watchToEnd('anonymizer', job!.jobId)).state).toBe(common.JobState.JOB_STATE_SUCCEEDED);
      const before = storeFiles();
      await expect(
        unary(
          client,
          'startAnonymizeDataset',
          anonymizer.StartAnonymizeDatasetRequest.fromPartial({
            requestId: 'intruder-b',
            input: b,
            outputPrefix: 'owned/run/',
          }),
        ),
      ).rejects.toMatchObject({
        code: grpc.status.FAILED_PRECONDITION,
        details: expect.stringContaining('output_prefix'),
      });
      expect(
        (await unary<anonymizer.StartAnonymizeDatasetResponse>(client, 'startAnonymizeDataset', owner)).job!.jobId,
      ).toBe(job!.jobId);
      expect(storeFiles()).toEqual(before);
      expect(fs.readFileSync(path.join(storeDir, 'owned/run/anonymized.jsonl'), 'utf8')).toContain('"id":"a1"');
      await healthy(target('anonymizer'));
    } finally {
      client.close();
    }
  });
});

describe('inputs that are not the bytes their sha256 names', () => {
  /** A manifest as it was referenced, then rewritten in place: what a service would read now is other bytes. */
  const rewritten = (key: string, text: string) => {
    const sha256 = createHash('sha256').update(text).digest('hex');
    const uri = put(key, text);
    put(key, text.replace(/\n$/, ' \n'));
    return { uri, sha256, sizeBytes: 0, mediaType: '' };
  };
  const manifest = `${JSON.stringify({ id: 'r1', text: REPORT, prompt: 'effusion', image: 'x.png' })}\n`;
  const starts: Record<Name, { field: string; start: (ref: common.ArtifactRef) => Promise<unknown> }> = {
    anonymizer: {
      field: 'input',
      start: (input) =>
        withUnary(
          anonymizer.AnonymizerServiceClient,
          'anonymizer',
          'startAnonymizeDataset',
          anonymizer.StartAnonymizeDatasetRequest.fromPartial({ requestId: 'digest-anonymizer', input }),
        ),
    },
    synthesizer: {
      field: 'prompts',
      start: (prompts) =>
        withUnary(
          synthesizer.SynthesizerServiceClient,
          'synthesizer',
          'startSynthesizeDataset',
          synthesizer.StartSynthesizeDatasetRequest.fromPartial({
            requestId: 'digest-synthesizer',
            prompts,
            params: { numInferenceSteps: 2 },
          }),
        ),
    },
    pretrainer: {
      field: 'config.data.real_pairs[0]',
      start: (pairs) => {
        const config = pretrainer.PretrainingConfig.fromPartial({
          method: pretrainer.Method.METHOD_CONVIRT,
          imageEncoder: { architecture: 'resnet18', imageSize: 32, width: 8 },
          data: { realPairs: [pairs] },
          batchSize: 4,
          epochs: 1,
        });
        return withUnary(pretrainer.PretrainerServiceClient, 'pretrainer', 'startPretraining', {
          requestId: 'digest-pretrainer',
          config,
        });
      },
    },
    evaluator: {
      field: 'config.encoders[0].image_encoder',
      start: (imageEncoder) => {
        const config = {
          encoders: [{ name: 'b', imageEncoder }],
          dataset: { format: 'csv', uri: pathToFileURL(dataRoot).href, options: { label_columns: 'positive' } },
          tasks: [evaluator.Task.TASK_CLASSIFICATION],
          labelFractions: [1],
          seeds: [0],
          epochs: 1,
        };
        return withUnary(
          evaluator.EvaluatorServiceClient,
          'evaluator',
          'startEvaluation',
          evaluator.StartEvaluationRequest.fromPartial({ requestId: 'digest-evaluator', config }),
        );
      },
    },
  };

  it.each(Object.keys(starts) as Name[])(
    '%s: refuses one as FAILED_PRECONDITION naming the field and the URI, starting no job',
    async (name) => {
      const ref = rewritten(`digest/${name}.jsonl`, manifest);
      const before = storeFiles();
      const error = await starts[name].start(ref).then(
        () => undefined,
        (e: grpc.ServiceError) => e,
      );
      expect(error).toMatchObject({
        code: grpc.status.FAILED_PRECONDITION,
        details: expect.stringMatching(
          new RegExp(
            `^${starts[name].field.replace(/[[\].]/g, '\\$&')}: sha256 mismatch for ${ref.uri} \\(expected ${ref.sha256}, found [0-9a-f]{64}\\)$`,
          ),
        ),
      });
      expect(storeFiles().filter((f) => !before.includes(f))).toEqual([]);
      await healthy(target(name));
    },
  );
});

describe('the anonymizer under hostile reports', () => {
  let client: anonymizer.AnonymizerServiceClient;
  beforeAll(() => {
    client = new anonymizer.AnonymizerServiceClient(target('anonymizer'), grpc.credentials.createInsecure(), options);
  });
  afterAll(() => client.close());
  const log = () => local.services.get('anonymizer')!.output();

  it('refuses a report id holding a name and phone number as INVALID_ARGUMENT naming report.id, echoing it nowhere', async () => {
    const error = await unary(
      client,
      'anonymize',
      anonymizer.AnonymizeRequest.fromPartial({ report: { id: PHI_ID, text: REPORT } }),
    ).then(
      () => undefined,
      (e: grpc.ServiceError) => e,
    );
    expect(error).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: expect.stringMatching(/^report\.id:/) });
    expect(error!.details + log()).not.toMatch(/Smith|555-123/);
    await healthy(target('anonymizer'));
  });

  it('refuses id_field equal to text_field as INVALID_ARGUMENT naming id_field', async () => {
    const input = { uri: put('inputs/same.jsonl', `${JSON.stringify({ id: 'r1', text: REPORT })}\n`) };
    await expect(
      unary(
        client,
        'startAnonymizeDataset',
        anonymizer.StartAnonymizeDatasetRequest.fromPartial({
          requestId: 'same-field',
          input,
          idField: 'text',
          textField: 'text',
        }),
      ),
    ).rejects.toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
      details: expect.stringMatching(/^id_field:/),
    });
    await healthy(target('anonymizer'));
  });

  it('keeps dataset ids holding PHI out of the outputs, errors.jsonl and the log, writing only under the prefix', async () => {
    const input = {
      uri: put(
        'inputs/phi-ids.jsonl',
        [
          { id: PHI_ID, text: REPORT },
          { id: 'r2', text: REPORT },
        ]
          .map((r) => JSON.stringify(r))
          .join('\n'),
      ),
    };
    const before = storeFiles();
    const { job } = await unary<anonymizer.StartAnonymizeDatasetResponse>(
      client,
      'startAnonymizeDataset',
      anonymizer.StartAnonymizeDatasetRequest.fromPartial({ requestId: 'phi-ids', input, outputPrefix: 'phi-ids/' }),
    );
    expect(await watchToEnd('anonymizer', job!.jobId)).toMatchObject({
      state: common.JobState.JOB_STATE_SUCCEEDED,
      progress: { completed: 2, failed: 1 },
    });
    expect(addedOutside(before, ['phi-ids/'])).toEqual([]);
    for (const file of storeFiles().filter((f) => f.startsWith('phi-ids/') || f.startsWith('jobs/')))
      expect(fs.readFileSync(path.join(storeDir, file), 'utf8')).not.toMatch(/Smith|555-123/);
    expect(log()).not.toMatch(/Smith|555-123/);
  });

  it('refuses a report above ANONYMIZER_MAX_REPORT_BYTES with RESOURCE_EXHAUSTED naming report.text, and stays healthy', async () => {
    await expect(
      unary(
        client,
        'anonymize',
        anonymizer.AnonymizeRequest.fromPartial({ report: { id: 'too-big', text: 'a'.repeat(MAX_REPORT_BYTES + 1) } }),
      ),
    ).rejects.toMatchObject({
      code: grpc.status.RESOURCE_EXHAUSTED,
      details: expect.stringMatching(/^report\.text: .*ANONYMIZER_MAX_REPORT_BYTES/),
    });
    await healthy(target('anonymizer'));
  });

  it('answers health checks within a second all through a report just under the limit', async () => {
    const text = REPORT.repeat(Math.floor((MAX_REPORT_BYTES - 1024) / REPORT.length));
    let finished = false;
    const big = unary<anonymizer.AnonymizeResponse>(
      client,
      'anonymize',
      anonymizer.AnonymizeRequest.fromPartial({ report: { id: 'long', text }, options: { omitSpans: true } }),
    ).finally(() => (finished = true));
    let checks = 0;
    while (!finished) {
      await healthy(target('anonymizer'));
      checks++;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect((await big).result!.text).not.toContain('Okafor');
    expect(checks).toBeGreaterThan(1);
  });
});

describe('a service that would listen unprotected, or with broken TLS, does not start', () => {
  const main = path.join(repoRoot, 'services', 'anonymizer', 'src', 'main.ts');
  async function exitOf(env: NodeJS.ProcessEnv) {
    const proc = await startProcess(process.execPath, {
      args: [...tsxLoaderArgs(), main],
      env: {
        GRPC_PORT: '0',
        METRICS_PORT: '0',
        MEDSYN_STORE: `file://${storeDir}`,
        ANONYMIZER_DETECTOR: 'rules',
        ...env,
      },
    });
    return { code: await proc.exited, output: proc.output() };
  }

  it('GRPC_HOST=0.0.0.0 without TLS, a token or GRPC_INSECURE_LISTEN=true: exit 1 naming the variables', async () => {
    const { code, output } = await exitOf({ GRPC_HOST: '0.0.0.0' });
    expect(code).toBe(1);
    expect(output).toMatch(/GRPC_HOST: .*GRPC_TLS_CERT.*GRPC_AUTH_TOKEN.*GRPC_INSECURE_LISTEN=true/);
  });

  it('a garbage GRPC_TLS_CLIENT_CA: exit 1 naming it, never "ready"', async () => {
    const tls = makeTlsFixture(path.join(tmp.dir));
    const garbage = path.join(tmp.dir, 'garbage-ca.pem');
    fs.writeFileSync(garbage, '-----BEGIN CERTIFICATE-----\nZ2FyYmFnZQ==\n-----END CERTIFICATE-----\n');
    const { code, output } = await exitOf({
      GRPC_TLS_CERT: tls.serverCert,
      GRPC_TLS_KEY: tls.serverKey,
      GRPC_TLS_CLIENT_CA: garbage,
    });
    expect(code).toBe(1);
    expect(output).toMatch(/GRPC_TLS_CLIENT_CA: not a bundle of PEM CA certificates/);
    expect(output).not.toMatch(/"msg":"ready"/);
  });
});
