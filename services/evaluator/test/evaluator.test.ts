import { evaluator } from '@medsyn/proto';
import { startService } from '@medsyn/service-kit';
import { describeServiceBasics } from '@medsyn/testing';
import { evaluatorService } from '../src/service';

describeServiceBasics({
  start: (env) => startService(evaluatorService(env)),
  serviceName: 'medsyn.evaluator.v1.EvaluatorService',
  Client: evaluator.EvaluatorServiceClient,
  unimplemented: [
    ['startEvaluation', evaluator.StartEvaluationRequest.fromPartial({ requestId: 'req-1' }), 7],
    ['getEvaluationResult', evaluator.GetEvaluationResultRequest.fromPartial({ jobId: 'j' }), 7],
  ],
});
