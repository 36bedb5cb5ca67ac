'use strict';
module.exports = { ...require('../jest.preset.js'), displayName: 'cli', testTimeout: 120000 };
