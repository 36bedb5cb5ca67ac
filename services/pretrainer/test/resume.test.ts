import * as grpc from '@grpc/grpc-js';
import { FileArtifactStore, getBuffer, putJsonl, readJsonl } from '@medsyn/artifact-store';
import { encodeGrayPng, grayImage } from '@medsyn/imaging';
import { serviceNodeArgs, startServiceProcess, type ServiceProcess } from '@medsyn/local-services';
import { common, jobs, pretrainer } from '@medsyn/proto';
import { callUnary, makeTempDir } from '@medsyn/testing';

/** The service as its own process, so that it can be killed like a crashed pod. */
function startPretrainer(storeDir: string): Promise<ServiceProcess> {
  return startServiceProcess({
    name: 'pretrainer',
    args: serviceNodeArgs('pretrainer', 'source'),
    env: { ...process.env, GRPC_HOST: '127.0.0.1', METRICS_HOST: '127.0.0.1', MEDSYN_STORE: `file://${storeDir}` },
    readyTimeoutMs: 60_000,
  });
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 240000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

describe('a pretrain job whose process is killed', () => {
  const tmp = makeTempDir('pretrainer-resume');
  const store = new FileArtifactStore(tmp.dir);
  let proc: ServiceProcess | undefined;
  afterAll(async () => {
    await proc?.stop();
    tmp.remove();
  });

  it('resumes on restart from its last checkpoint; every step is logged once and the job succeeds', async () => {
    await store.check();
    const lines = [];
    for (let i = 0; i < 24; i++) {
      await store.put(
        `pairs/${i}.png`,
        encodeGrayPng(grayImage(32, 32, new Float32Array(32 * 32).fill(0.2 + 0.2 * (i % 4)))),
      );
      lines.push({ image: `${i}.png`, report: ['Clear.', 'Haze.', 'Opacity.', 'White out.'][i % 4] });
    }
    await putJsonl(store, 'pairs/pairs.jsonl', lines);
    const config = pretrainer.PretrainingConfig.fromPartial({
      method: pretrainer.Method.METHOD_CONVIRT,
      imageEncoder: { architecture: 'resnet18', imageSize: 32, width: 8 },
      textEncoder: { layers: 1, hiddenSize: 16, heads: 2, maxLength: 8, vocabSize: 80 },
      // 0.25 holds out 6 pairs: 18 to train on, 4 steps an epoch.
      data: { realPairs: [{ uri: 'pairs/pairs.jsonl' }], validationFraction: 0.25 },
      batchSize: 4,
      // 40 steps: the kill lands after the first checkpoints and long before the end even on a busy machine.
      epochs: 10,
      embeddingSize: 8,
      checkpointEverySteps: 2,
    });

    proc = await startPretrainer(tmp.dir);
    let client = new pretrainer.PretrainerServiceClient(proc.target, grpc.credentials.createInsecure());
    const start = await callUnary<pretrainer.StartPretrainingResponse>(
      client,
      'startPretraining',
      pretrainer.StartPretrainingRequest.fromPartial({ requestId: 'crash', config }),
    );
    client.close();
    const jobId = start.job!.jobId;
    // Killed (no shutdown, no final checkpoint) once a checkpoint exists.
    const checkpointed = await until('a checkpoint', async () => {
      const stat = await store.stat('pretrainer/crash/checkpoints/latest.json');
      return stat
        ? (
            JSON.parse((await getBuffer(store, 'pretrainer/crash/checkpoints/latest.json')).toString('utf8')) as {
              step: number;
            }
          ).step
        : undefined;
    });
    await proc.kill();
    expect(checkpointed).toBeLessThan(40);

    proc = await startPretrainer(tmp.dir);
    const target = proc.target;
    const jobsClient = new jobs.JobServiceClient(target, grpc.credentials.createInsecure());
    const done = await until('the job to end', async () => {
      const { job } = await callUnary<jobs.GetJobResponse>(
        jobsClient,
        'getJob',
        jobs.GetJobRequest.fromPartial({ jobId }),
      );
      return job!.state === common.JobState.JOB_STATE_SUCCEEDED || job!.state === common.JobState.JOB_STATE_FAILED
        ? job
        : undefined;
    });
    jobsClient.close();
    expect(done!.error?.message ?? '').toBe('');
    expect(done!.state).toBe(common.JobState.JOB_STATE_SUCCEEDED);
    const steps: number[] = [];
    for await (const line of readJsonl<{ step: number }>(store, 'pretrainer/crash/train_log.jsonl'))
      if (line.ok) steps.push(line.value.step);
    expect(steps).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    // It continued from the checkpoint (one at least as late as the one seen before the kill), not from scratch.
    const run = JSON.parse((await getBuffer(store, 'pretrainer/crash/result.json')).toString('utf8')) as {
      resumedFromStep: number;
    };
    expect(run.resumedFromStep).toBeGreaterThanOrEqual(checkpointed);
    client = new pretrainer.PretrainerServiceClient(target, grpc.credentials.createInsecure());
    const result = await callUnary<pretrainer.GetPretrainingResultResponse>(
      client,
      'getPretrainingResult',
      pretrainer.GetPretrainingResultRequest.fromPartial({ jobId }),
    );
    client.close();
    expect(result.summary!.steps).toBe(40);
  });
});
