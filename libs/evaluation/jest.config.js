'use strict';
module.exports = { ...require('../../jest.preset.js'), displayName: 'evaluation', testTimeout: 120000 };
