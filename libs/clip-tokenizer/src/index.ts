export * from './clip-vocabulary';
export * from './clip-tokenizer';
