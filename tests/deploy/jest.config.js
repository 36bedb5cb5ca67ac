'use strict';
module.exports = { ...require('../../jest.preset.js'), displayName: 'deploy', testTimeout: 60000 };
