'use strict';
module.exports = { ...require('../../jest.preset.js'), displayName: 'random', testTimeout: 120000 };
