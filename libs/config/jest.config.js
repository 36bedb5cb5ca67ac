'use strict';
module.exports = { ...require('../../jest.preset.js'), displayName: 'config', testTimeout: 60000 };
