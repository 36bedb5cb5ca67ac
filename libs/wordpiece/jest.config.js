'use strict';
module.exports = { ...require('../../jest.preset.js'), displayName: 'wordpiece', testTimeout: 60000 };
