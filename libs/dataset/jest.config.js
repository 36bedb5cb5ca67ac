'use strict';
module.exports = { ...require('../../jest.preset.js'), displayName: 'dataset', testTimeout: 120000 };
