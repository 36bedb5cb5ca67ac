import { synthesizer } from '@medsyn/proto';
import { startService } from '@medsyn/service-kit';
import { describeServiceBasics } from '@medsyn/testing';
import { synthesizerService } from '../src/service';

describeServiceBasics({
  start: (env) => startService(synthesizerService(env)),
  serviceName: 'medsyn.synthesizer.v1.SynthesizerService',
  Client: synthesizer.SynthesizerServiceClient,
  unimplemented: [
    ['getModelInfo', synthesizer.GetModelInfoRequest.fromPartial({}), 5],
    ['startSynthesizeDataset', synthesizer.StartSynthesizeDatasetRequest.fromPartial({ requestId: 'req-1' }), 5],
  ],
});
