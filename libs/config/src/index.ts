export * from './execution-provider';
export * from './image-architecture';
export * from './pretraining-config';
export * from './evaluation-config';
