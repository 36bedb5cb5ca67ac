import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { common, evaluator, jobs, pretrainer, synthesizer } from '@medsyn/proto';
import { makeTempDir } from '@medsyn/testing';
import { startLocalServices, type LocalServices } from '../src';
import { healthy, unary } from './probes';

// Hostile inputs from issue #15 against the real services on loopback: each gets its clear error,
// the service keeps answering health checks within a second, and nothing lands outside its prefix.
const tmp = makeTempDir('bad-input-bounds');
const storeDir = path.join(tmp.dir, 'store');
const dataRoot = path.join(tmp.dir, 'datasets');
let local: LocalServices;

beforeAll(async () => {
  fs.mkdirSync(dataRoot, { recursive: true });
  local = await startLocalServices(['evaluator', 'synthesizer', 'pretrainer'], {
    MEDSYN_STORE: `file://${storeDir}`,
    EVALUATOR_DATASET_ROOTS: dataRoot,
  });
}, 90000);
afterAll(async () => {
  await local?.stop();
  tmp.remove();
});

const target = (name: 'evaluator' | 'synthesizer' | 'pretrainer') => local.services.get(name)!.target;
/** Top-level entries of the store: a probe must add none outside the service's own prefixes. */
const storeTop = () => (fs.existsSync(storeDir) ? fs.readdirSync(storeDir).sort() : []);

describe('the evaluator under hostile dataset names', () => {
  let client: evaluator.EvaluatorServiceClient;
  let jobsClient: jobs.JobServiceClient;
  beforeAll(() => {
    client = new evaluator.EvaluatorServiceClient(target('evaluator'), grpc.credentials.createInsecure());
    jobsClient = new jobs.JobServiceClient(target('evaluator'), grpc.credentials.createInsecure());
  });
  afterAll(() => {
    client.close();
    jobsClient.close();
  });
  const request = (requestId: string, uri: string, change: Partial<evaluator.EvaluationConfig> = {}) =>
    evaluator.StartEvaluationRequest.fromPartial({
      requestId,
      config: {
        encoders: [{ name: 'random', baseline: { architecture: 'resnet18', size: 32, width: 4, seed: 1 } }],
        dataset: { format: 'csv', uri, options: { label_columns: 'positive' } },
        tasks: [evaluator.Task.TASK_CLASSIFICATION],
        labelFractions: [1],
        seeds: [0],
        epochs: 1,
        ...change,
      },
    });

  it('refuses file:///etc as PERMISSION_DENIED naming config.dataset.uri, quoting nothing, and stays healthy', async () => {
    const before = storeTop();
    const error = await unary(
      client,
      'startEvaluation',
      request('bad-etc', 'file:///etc', {
        dataset: {
          format: 'csv',
          uri: 'file:///etc',
          sha256: '',
          options: { csv: 'group', label_columns: 'positive' },
        },
      }),
    ).then(
      () => undefined,
      (e: grpc.ServiceError) => e,
    );
    expect(error).toMatchObject({
      code: grpc.status.PERMISSION_DENIED,
      details: expect.stringContaining('config.dataset.uri'),
    });
    expect(error!.details).not.toMatch(/root:/);
    await healthy(target('evaluator'));
    expect(storeTop()).toEqual(before);
  });

  it('fails a job whose labels.csv is a FIFO at once, naming the file, with health answering meanwhile', async () => {
    const dir = path.join(dataRoot, 'fifo');
    fs.mkdirSync(dir, { recursive: true });
    execFileSync('mkfifo', [path.join(dir, 'labels.csv')]);
    const started = await unary<evaluator.StartEvaluationResponse>(
      client,
      'startEvaluation',
      request('bad-fifo', pathToFileURL(dir).href),
    );
    await healthy(target('evaluator'));
    const last = await new Promise<common.Job>((resolve, reject) => {
      let job: common.Job | undefined;
      const call = jobsClient.watchJob({ jobId: started.job!.jobId });
      call.on('data', (r: { job: common.Job }) => (job = r.job));
      call.on('end', () => resolve(job!));
      call.on('error', reject);
    });
    expect(last.state).toBe(common.JobState.JOB_STATE_FAILED);
    expect(last.error).toMatchObject({
      code: 'INVALID_ARGUMENT',
      field: 'config.dataset',
      message: expect.stringContaining('labels.csv is not a regular file'),
    });
    await healthy(target('evaluator'));
  });

  it('refuses sizes past its bounds as INVALID_ARGUMENT naming the field', async () => {
    await expect(
      unary(client, 'startEvaluation', request('bad-max-images', pathToFileURL(dataRoot).href, { maxImages: 1e9 })),
    ).rejects.toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
      details: expect.stringContaining('config.max_images'),
    });
    await healthy(target('evaluator'));
  });
});

describe('the synthesizer under hostile model names', () => {
  it('refuses a model.uri outside models/ (the job registry, another prefix) as PERMISSION_DENIED, writing nothing', async () => {
    const client = new synthesizer.SynthesizerServiceClient(target('synthesizer'), grpc.credentials.createInsecure());
    fs.mkdirSync(path.join(storeDir, 'prompts'), { recursive: true });
    fs.writeFileSync(path.join(storeDir, 'prompts', 'p.jsonl'), '{"id":"a","prompt":"effusion"}\n');
    const before = storeTop();
    try {
      for (const prefix of ['jobs/', 'jobs/synthesizer/', 'prompts/']) {
        const request = synthesizer.StartSynthesizeDatasetRequest.fromPartial({
          requestId: `bad-model-${prefix}`,
          prompts: { uri: pathToFileURL(path.join(storeDir, 'prompts', 'p.jsonl')).href },
          params: { numInferenceSteps: 2 },
          model: { uri: pathToFileURL(path.join(storeDir, prefix)).href },
        });
        await expect(unary(client, 'startSynthesizeDataset', request)).rejects.toMatchObject({
          code: grpc.status.PERMISSION_DENIED,
          details: expect.stringContaining('model.uri'),
        });
      }
      await healthy(target('synthesizer'));
      expect(storeTop()).toEqual(before);
    } finally {
      client.close();
    }
  });
});

describe('the pretrainer under oversized configs', () => {
  it.each([
    ['batch_size', { batchSize: 1e9 }],
    ['image_encoder.image_size', { imageEncoder: { architecture: 'resnet18', imageSize: 1_048_576, width: 8 } }],
  ])('refuses %s past its bound as INVALID_ARGUMENT naming it, and stays healthy', async (field, change) => {
    const client = new pretrainer.PretrainerServiceClient(target('pretrainer'), grpc.credentials.createInsecure());
    const before = storeTop();
    try {
      const config = pretrainer.PretrainingConfig.fromPartial({
        method: pretrainer.Method.METHOD_CONVIRT,
        imageEncoder: { architecture: 'resnet18', imageSize: 32, width: 8 },
        data: { realPairs: [{ uri: 'pairs/none.jsonl' }] },
        batchSize: 4,
        epochs: 1,
        ...change,
      });
      await expect(unary(client, 'startPretraining', { requestId: `bad-${field}`, config })).rejects.toMatchObject({
        code: grpc.status.INVALID_ARGUMENT,
        details: expect.stringContaining(`config.${field}: must be <=`),
      });
      await healthy(target('pretrainer'));
      expect(storeTop()).toEqual(before);
    } finally {
      client.close();
    }
  });
});
