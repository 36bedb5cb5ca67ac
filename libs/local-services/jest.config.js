'use strict';
module.exports = { ...require('../../jest.preset.js'), displayName: 'local-services', testTimeout: 60000 };
