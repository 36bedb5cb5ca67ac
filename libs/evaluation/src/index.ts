export * from './metrics';
export * from './downstream-datasets';
export * from './splits';
export * from './encoder';
export * from './linear-probe';
export * from './dense-tasks';
export * from './zero-shot';
export * from './evaluation-run';
