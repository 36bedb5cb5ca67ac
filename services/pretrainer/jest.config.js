'use strict';
module.exports = { ...require('../../jest.preset.js'), displayName: 'pretrainer', testTimeout: 120000 };
