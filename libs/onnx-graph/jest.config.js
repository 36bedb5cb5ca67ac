'use strict';
module.exports = { ...require('../../jest.preset.js'), displayName: 'onnx-graph', testTimeout: 120000 };
