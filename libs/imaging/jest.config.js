'use strict';
module.exports = { ...require('../../jest.preset.js'), displayName: 'imaging', testTimeout: 120000 };
