'use strict';
module.exports = { ...require('../../jest.preset.js'), displayName: 'evaluation-report', testTimeout: 60000 };
