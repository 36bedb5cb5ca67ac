'use strict';
module.exports = { ...require('../../jest.preset.js'), displayName: 'synthesizer', testTimeout: 120000 };
