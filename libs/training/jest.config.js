'use strict';
module.exports = { ...require('../../jest.preset.js'), displayName: 'training', testTimeout: 120000 };
