export * from './results';
export * from './report';
