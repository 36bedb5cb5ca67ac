// medsyn's contracts. Everything under ./gen is generated from proto/ (`npm run generate`).
import * as path from 'node:path';

export * as common from './common';
export * as jobs from './gen/medsyn/jobs/v1/jobs';
export * as anonymizer from './gen/medsyn/anonymizer/v1/anonymizer';
export * as synthesizer from './gen/medsyn/synthesizer/v1/synthesizer';
export * as pretrainer from './gen/medsyn/pretrainer/v1/pretrainer';
export * as evaluator from './gen/medsyn/evaluator/v1/evaluator';

/** Binary FileDescriptorSet of every medsyn proto (and its imports), served by reflection. */
export const descriptorSetPath = path.join(__dirname, 'gen', 'descriptor-set.binpb');

/** Directory holding the .proto sources, for clients in other languages. */
export const protoRoot = path.resolve(__dirname, '../../../proto');
