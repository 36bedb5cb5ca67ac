'use strict';
module.exports = { ...require('../../jest.preset.js'), displayName: 'diffusion', testTimeout: 120000 };
