'use strict';
module.exports = { ...require('../../jest.preset.js'), displayName: 'artifact-store', testTimeout: 120000 };
