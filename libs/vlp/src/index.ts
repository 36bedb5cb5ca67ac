export * from './losses';
export * from './encoder-spec';
export * from './schedule';
export { vlpObjective, WORD_MASK_INPUT, type VlpModelOptions } from './model';
export * from './data';
export * from './run';
