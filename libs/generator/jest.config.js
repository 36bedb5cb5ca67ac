'use strict';
module.exports = { ...require('../../jest.preset.js'), displayName: 'generator', testTimeout: 300000 };
