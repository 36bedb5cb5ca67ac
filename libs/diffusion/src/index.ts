export * from './schedulers';
export * from './noise';
export * from './float16';
export * from './pipeline';
export * from './tiny-pipeline';
export * from './quality';
export * from './synthesize';
export * from './dataset';
