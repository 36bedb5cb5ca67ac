import { pretrainer } from '@medsyn/proto';
import { startService } from '@medsyn/service-kit';
import { describeServiceBasics } from '@medsyn/testing';
import { pretrainerService } from '../src/service';

describeServiceBasics({
  start: (env) => startService(pretrainerService(env)),
  serviceName: 'medsyn.pretrainer.v1.PretrainerService',
  Client: pretrainer.PretrainerServiceClient,
  unimplemented: [
    ['startPretraining', pretrainer.StartPretrainingRequest.fromPartial({ requestId: 'req-1' }), 6],
    ['getPretrainingResult', pretrainer.GetPretrainingResultRequest.fromPartial({ jobId: 'j' }), 6],
  ],
});
