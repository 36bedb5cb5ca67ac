'use strict';
module.exports = { ...require('../../jest.preset.js'), displayName: 'service-kit', testTimeout: 120000 };
