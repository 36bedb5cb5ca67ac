import * as fs from 'node:fs';
import * as protoLoader from '@grpc/proto-loader';
import { anonymizer, common, descriptorSetPath, evaluator, jobs, pretrainer, protoRoot, synthesizer } from '../src';

describe('generated contracts', () => {
  it('round-trip a message through its wire encoding', () => {
    const request = anonymizer.StartAnonymizeDatasetRequest.fromPartial({
      requestId: 'req-1',
      input: {
        uri: 's3://medsyn/reports.jsonl',
        sha256: 'ab'.repeat(32),
        sizeBytes: 2 ** 40,
        mediaType: 'application/x-ndjson',
      },
      options: { mode: anonymizer.OutputMode.OUTPUT_MODE_SURROGATE },
    });
    const decoded = anonymizer.StartAnonymizeDatasetRequest.decode(
      anonymizer.StartAnonymizeDatasetRequest.encode(request).finish(),
    );
    expect(decoded).toEqual(request);
    expect(decoded.input!.sizeBytes).toBe(2 ** 40);
  });

  it('keep optional sampling parameters distinguishable from zero', () => {
    const unset = synthesizer.GenerationParams.decode(
      synthesizer.GenerationParams.encode(synthesizer.GenerationParams.fromPartial({})).finish(),
    );
    const zero = synthesizer.GenerationParams.decode(
      synthesizer.GenerationParams.encode(synthesizer.GenerationParams.fromPartial({ guidanceScale: 0 })).finish(),
    );
    expect(unset.guidanceScale).toBeUndefined();
    expect(zero.guidanceScale).toBe(0);
  });

  it('ship a descriptor set with every service for reflection', () => {
    const definition = protoLoader.loadFileDescriptorSetFromBuffer(fs.readFileSync(descriptorSetPath));
    for (const name of [
      'medsyn.anonymizer.v1.AnonymizerService',
      'medsyn.synthesizer.v1.SynthesizerService',
      'medsyn.pretrainer.v1.PretrainerService',
      'medsyn.evaluator.v1.EvaluatorService',
    ]) {
      expect(definition[name]).toBeDefined();
    }
    expect(definition['medsyn.jobs.v1.JobService']).toBeDefined();
    expect(Object.keys(jobs.JobServiceService)).toEqual(['getJob', 'listJobs', 'watchJob', 'cancelJob']);
    expect(Object.keys(pretrainer.PretrainerServiceService)).toEqual(['startPretraining', 'getPretrainingResult']);
    expect(Object.keys(evaluator.EvaluatorServiceService)).toEqual(
      expect.arrayContaining(['startEvaluation', 'getEvaluationResult']),
    );
    expect(common.JobState.JOB_STATE_SUCCEEDED).toBe(3);
    expect(fs.existsSync(`${protoRoot}/medsyn/common/v1/job.proto`)).toBe(true);
  });
});
