'use strict';
module.exports = { ...require('../../jest.preset.js'), displayName: 'generator-training', testTimeout: 300000 };
