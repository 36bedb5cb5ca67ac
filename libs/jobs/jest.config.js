'use strict';
module.exports = { ...require('../../jest.preset.js'), displayName: 'jobs', testTimeout: 120000 };
