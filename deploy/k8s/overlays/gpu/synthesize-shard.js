#!/usr/bin/env node
'use strict';
// One shard of a synthetic dataset, run by a pod of the synthesize-dataset Indexed Job: starts
// StartSynthesizeDataset on the synthesizer with shard {index: JOB_COMPLETION_INDEX, count:
// SHARD_COUNT}, follows the job with WatchJob and exits 0 once it succeeded, 1 when it failed,
// was cancelled or an RPC failed, 2 on bad settings. The request id is derived from the dataset
// id and the shard, so a retried pod finds and resumes the same job.
const grpc = require('@grpc/grpc-js');
const { common, jobs, synthesizer } = require('@medsyn/proto');

function setting(name, fallback) {
  const value = process.env[name] ?? fallback;
  if (value === undefined || value === '') fail(2, `${name} must be set`);
  return value;
}

function count(name, value, min) {
  if (!/^\d+$/.test(value) || Number(value) < min)
    fail(2, `${name} must be an integer >= ${min} (got ${JSON.stringify(value)})`);
  return Number(value);
}

function fail(code, message) {
  process.stderr.write(`synthesize-shard: ${message}\n`);
  process.exit(code);
}

const target = setting('SYNTHESIZER_TARGET', '127.0.0.1:50052');
const shardCount = count('SHARD_COUNT', setting('SHARD_COUNT'), 1);
const shardIndex = count('JOB_COMPLETION_INDEX', setting('JOB_COMPLETION_INDEX'), 0);
if (shardIndex >= shardCount) fail(2, `JOB_COMPLETION_INDEX ${shardIndex} must be below SHARD_COUNT ${shardCount}`);
const requestId = `${setting('DATASET_REQUEST_ID')}-shard-${shardIndex}-of-${shardCount}`;
const request = synthesizer.StartSynthesizeDatasetRequest.fromPartial({
  requestId,
  prompts: { uri: setting('PROMPTS_URI'), sha256: process.env.PROMPTS_SHA256 ?? '', mediaType: 'application/x-ndjson' },
  shard: { index: shardIndex, count: shardCount },
  imagesPerPrompt: count('IMAGES_PER_PROMPT', process.env.IMAGES_PER_PROMPT ?? '1', 1),
  outputPrefix: process.env.OUTPUT_PREFIX ?? '',
  // Unset: the synthesizer's own default (its NUM_INFERENCE_STEPS, else the model's).
  params: process.env.NUM_INFERENCE_STEPS
    ? { numInferenceSteps: count('NUM_INFERENCE_STEPS', process.env.NUM_INFERENCE_STEPS, 1) }
    : undefined,
});

const credentials = grpc.credentials.createInsecure();
const synth = new synthesizer.SynthesizerServiceClient(target, credentials);
const jobClient = new jobs.JobServiceClient(target, credentials);
const ENDED = new Map([
  [common.JobState.JOB_STATE_SUCCEEDED, 0],
  [common.JobState.JOB_STATE_FAILED, 1],
  [common.JobState.JOB_STATE_CANCELLED, 1],
]);

synth.startSynthesizeDataset(request, { deadline: Date.now() + 60_000 }, (error, response) => {
  if (error) fail(1, `StartSynthesizeDataset: ${grpc.status[error.code]}: ${error.details}`);
  const { jobId } = response.job;
  process.stdout.write(`${JSON.stringify({ msg: 'started', jobId, shardIndex, shardCount })}\n`);
  const watch = jobClient.watchJob({ jobId });
  watch.on('data', ({ job }) => {
    const exitCode = ENDED.get(job.state);
    if (exitCode === undefined) return;
    process.stdout.write(
      `${JSON.stringify({ msg: 'ended', jobId, state: common.JobState[job.state], error: job.error })}\n`,
    );
    process.exit(exitCode);
  });
  watch.on('error', (e) => fail(1, `WatchJob: ${grpc.status[e.code]}: ${e.details}`));
});
