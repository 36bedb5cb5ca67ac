'use strict';
module.exports = { ...require('../../jest.preset.js'), displayName: 'contract', testTimeout: 60000 };
