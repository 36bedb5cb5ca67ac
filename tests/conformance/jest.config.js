'use strict';
module.exports = { ...require('../../jest.preset.js'), displayName: 'conformance', testTimeout: 60000 };
