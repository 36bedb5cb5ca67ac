'use strict';
module.exports = { ...require('../../jest.preset.js'), displayName: 'telemetry', testTimeout: 120000 };
