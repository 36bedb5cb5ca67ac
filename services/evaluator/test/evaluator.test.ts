import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { encodeGrayPng, grayImage } from '@medsyn/imaging';
import { common, evaluator, jobs } from '@medsyn/proto';
import { startService, type RunningService } from '@medsyn/service-kit';
import { callUnary, describeServiceBasics, makeTempDir, testServiceEnv } from '@medsyn/testing';
import { evaluatorService } from '../src/service';

describeServiceBasics({
  start: (env) => startService(evaluatorService(env)),
  serviceName: 'medsyn.evaluator.v1.EvaluatorService',
  Client: evaluator.EvaluatorServiceClient,
  unimplemented: [],
});

/** 24 images, a bright square on noise; label 1 squares are larger. Written as a generic CSV dataset. */
function writeDataset(dir: string): string {
  fs.mkdirSync(path.join(dir, 'images'), { recursive: true });
  const rows = ['image,positive'];
  let s = 7;
  const rand = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648);
  for (let i = 0; i < 24; i++) {
    const label = i % 2;
    const image = grayImage(32, 32);
    for (let p = 0; p < image.data.length; p++) image.data[p] = 0.3 * rand();
    const side = label ? 14 : 6;
    for (let y = 8; y < 8 + side; y++) for (let x = 8; x < 8 + side; x++) image.data[y * 32 + x] = 0.9;
    fs.writeFileSync(path.join(dir, 'images', `im${i}.png`), encodeGrayPng(image));
    rows.push(`im${i}.png,${label}`);
  }
  fs.writeFileSync(path.join(dir, 'labels.csv'), `${rows.join('\n')}\n`);
  return dir;
}

describe('evaluation jobs over gRPC', () => {
  const tmp = makeTempDir('evaluator');
  let service: RunningService;
  let client: grpc.Client;
  let jobsClient: grpc.Client;
  const dataset = writeDataset(path.join(tmp.dir, 'data'));
  const request = (requestId: string, seeds = [0]) =>
    evaluator.StartEvaluationRequest.fromPartial({
      requestId,
      config: {
        encoders: [{ name: 'random', baseline: { architecture: 'resnet18', size: 32, width: 4, seed: 1 }, pretrainingData: 'random' }],
        dataset: { format: 'csv', uri: pathToFileURL(dataset).href, options: { label_columns: 'positive', images: 'images' } },
        tasks: [evaluator.Task.TASK_CLASSIFICATION],
        labelFractions: [1],
        seeds,
        epochs: 5,
      },
    });

  beforeAll(async () => {
    service = await startService(evaluatorService(testServiceEnv(path.join(tmp.dir, 'store'))));
    client = new evaluator.EvaluatorServiceClient(service.target, grpc.credentials.createInsecure());
    jobsClient = new jobs.JobServiceClient(service.target, grpc.credentials.createInsecure());
  });
  afterAll(async () => {
    client?.close();
    jobsClient?.close();
    await service?.shutdown();
    tmp.remove();
  });

  function watch(jobId: string): Promise<common.Job[]> {
    return new Promise((resolve, reject) => {
      const seen: common.Job[] = [];
      const call = (jobsClient as unknown as jobs.JobServiceClient).watchJob({ jobId });
      call.on('data', (response: { job: common.Job }) => seen.push(response.job));
      call.on('end', () => resolve(seen));
      call.on('error', reject);
    });
  }

  it('starts, watches and returns results; a second start with the same request id finds the same job', async () => {
    const started = await callUnary<evaluator.StartEvaluationResponse>(client, 'startEvaluation', request('eval-1'));
    const states = await watch(started.job!.jobId);
    expect(states.at(-1)).toMatchObject({ state: common.JobState.JOB_STATE_SUCCEEDED, progress: { completed: 1, total: 1, unit: 'runs' } });
    expect((await callUnary<evaluator.StartEvaluationResponse>(client, 'startEvaluation', request('eval-1'))).job!.jobId).toBe(started.job!.jobId);
    const result = await callUnary<evaluator.GetEvaluationResultResponse>(client, 'getEvaluationResult', { jobId: started.job!.jobId });
    const auroc = result.metrics.find((m) => m.metric === 'auroc_macro')!;
    expect(auroc).toMatchObject({ encoder: 'random', task: evaluator.Task.TASK_CLASSIFICATION, labelFraction: 1 });
    expect(auroc.perSeed).toHaveLength(1);
    expect(auroc.mean).toBeGreaterThanOrEqual(0);
    expect(result.report!.uri).toMatch(/evaluator\/eval-1\/report\.html$/);
    expect(result.results!.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(result.lineage!.configSha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it('a reused request id with other parameters is ALREADY_EXISTS', async () => {
    await callUnary(client, 'startEvaluation', request('eval-2'));
    await expect(callUnary(client, 'startEvaluation', request('eval-2', [0, 1]))).rejects.toMatchObject({ code: grpc.status.ALREADY_EXISTS });
  });

  it('bad requests are INVALID_ARGUMENT naming the field; unknown jobs NOT_FOUND', async () => {
    const noTasks = request('eval-3');
    noTasks.config!.tasks = [];
    await expect(callUnary(client, 'startEvaluation', noTasks)).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: expect.stringContaining('config.tasks') });
    const s3 = request('eval-4');
    s3.config!.dataset!.uri = 's3://bucket/data';
    await expect(callUnary(client, 'startEvaluation', s3)).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: expect.stringContaining('config.dataset.uri') });
    const fraction = request('eval-5');
    fraction.config!.labelFractions = [1.5];
    await expect(callUnary(client, 'startEvaluation', fraction)).rejects.toMatchObject({ details: expect.stringContaining('config.label_fractions[0]') });
    await expect(callUnary(client, 'getEvaluationResult', { jobId: 'nope' })).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
  });

  it('a job whose dataset is missing fails with a message naming it, and has no result', async () => {
    const missing = request('eval-6');
    missing.config!.dataset!.uri = pathToFileURL(path.join(tmp.dir, 'nowhere')).href;
    const started = await callUnary<evaluator.StartEvaluationResponse>(client, 'startEvaluation', missing);
    const last = (await watch(started.job!.jobId)).at(-1)!;
    expect(last.state).toBe(common.JobState.JOB_STATE_FAILED);
    expect(last.error).toMatchObject({ code: 'INVALID_ARGUMENT', field: 'config.dataset', message: expect.stringContaining('dataset root not found') });
    await expect(callUnary(client, 'getEvaluationResult', { jobId: started.job!.jobId })).rejects.toMatchObject({ code: grpc.status.FAILED_PRECONDITION });
  });
});
