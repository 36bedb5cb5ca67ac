import { anonymizer } from '@medsyn/proto';
import { startService } from '@medsyn/service-kit';
import { describeServiceBasics } from '@medsyn/testing';
import { anonymizerService } from '../src/service';

describeServiceBasics({
  start: (env) => startService(anonymizerService(env)),
  serviceName: 'medsyn.anonymizer.v1.AnonymizerService',
  Client: anonymizer.AnonymizerServiceClient,
  unimplemented: [
    ['anonymize', anonymizer.AnonymizeRequest.fromPartial({ report: { id: 'r1', text: 'FINDINGS: clear lungs.' } }), 4],
    ['startAnonymizeDataset', anonymizer.StartAnonymizeDatasetRequest.fromPartial({ requestId: 'req-1' }), 4],
  ],
});
