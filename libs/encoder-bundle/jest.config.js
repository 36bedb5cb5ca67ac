'use strict';
module.exports = { ...require('../../jest.preset.js'), displayName: 'encoder-bundle', testTimeout: 60000 };
