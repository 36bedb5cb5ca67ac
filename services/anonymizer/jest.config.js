'use strict';
module.exports = { ...require('../../jest.preset.js'), displayName: 'anonymizer', testTimeout: 120000 };
