// Lint for every project. @nx/enforce-module-boundaries keeps dependencies pointing one way:
// services and the CLI (type:app) use libs, libs never use services, services never use each other.
// The conformance suite (type:test-suite) is a test library with its own CLI: it uses libs, and
// only test projects (type:e2e) may use it, never a lib, service or app.
'use strict';
const nx = require('@nx/eslint-plugin');
const tseslint = require('typescript-eslint');
// Layout is Prettier's (`npm run format`); this turns off the lint rules that would argue with it.
const prettierConfig = require('eslint-config-prettier');

module.exports = [
  { ignores: ['**/dist/**', '**/node_modules/**', '**/gen/**', '**/coverage/**'] },
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts', '**/*.js'],
    plugins: { '@nx': nx },
    rules: {
      '@nx/enforce-module-boundaries': [
        'error',
        {
          allow: [],
          depConstraints: [
            { sourceTag: 'type:lib', onlyDependOnLibsWithTags: ['type:lib'] },
            { sourceTag: 'type:service', onlyDependOnLibsWithTags: ['type:lib'] },
            { sourceTag: 'type:test-suite', onlyDependOnLibsWithTags: ['type:lib'] },
            { sourceTag: 'type:e2e', onlyDependOnLibsWithTags: ['type:lib', 'type:test-suite'] },
            { sourceTag: 'type:app', onlyDependOnLibsWithTags: ['type:lib'] },
          ],
        },
      ],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['**/*.js'],
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  prettierConfig,
];
