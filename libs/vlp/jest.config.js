'use strict';
module.exports = { ...require('../../jest.preset.js'), displayName: 'vlp', testTimeout: 60000 };
