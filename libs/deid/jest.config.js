'use strict';
module.exports = { ...require('../../jest.preset.js'), displayName: 'deid', testTimeout: 120000 };
