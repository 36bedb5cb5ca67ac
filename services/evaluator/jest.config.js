'use strict';
module.exports = { ...require('../../jest.preset.js'), displayName: 'evaluator', testTimeout: 120000 };
