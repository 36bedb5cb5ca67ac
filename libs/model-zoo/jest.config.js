'use strict';
module.exports = { ...require('../../jest.preset.js'), displayName: 'model-zoo', testTimeout: 120000 };
