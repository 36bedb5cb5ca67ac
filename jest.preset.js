// Shared jest settings: TypeScript through swc (type-checking is the typecheck target's job),
// and workspace packages resolved to their sources through the "medsyn-source" export condition.
'use strict';
module.exports = {
  testEnvironment: require.resolve('./jest.environment.js'),
  testEnvironmentOptions: { customExportConditions: ['medsyn-source', 'node', 'require', 'default'] },
  testMatch: ['<rootDir>/test/**/*.test.ts'],
  transform: {
    '^.+\\.ts$': [
      '@swc/jest',
      {
        jsc: { parser: { syntax: 'typescript' }, target: 'es2022' },
        module: { type: 'commonjs' },
        sourceMaps: 'inline',
      },
    ],
  },
  testTimeout: 30000,
};
