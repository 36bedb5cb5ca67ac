'use strict';
module.exports = { ...require('../jest.preset.js'), displayName: 'examples', testTimeout: 120000 };
