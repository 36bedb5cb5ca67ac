'use strict';
module.exports = { ...require('../../jest.preset.js'), displayName: 'clip-tokenizer', testTimeout: 120000 };
