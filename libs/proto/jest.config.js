'use strict';
module.exports = { ...require('../../jest.preset.js'), displayName: 'proto' };
