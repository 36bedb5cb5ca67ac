export * from './metrics';
export * from './datasets';
export * from './splits';
export * from './encoder';
export * from './linear-probe';
export * from './dense-tasks';
