export * from './config';
export * from './data';
export * from './model';
export * from './train';
export * from './export';
export * from './card';
