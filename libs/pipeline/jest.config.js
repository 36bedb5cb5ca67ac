'use strict';
module.exports = { ...require('../../jest.preset.js'), displayName: 'pipeline', testTimeout: 600000 };
