// jest's node environment runs tests in their own realm, so typed arrays made by a test are not
// `instanceof Float32Array` for native addons such as onnxruntime-node (and the reverse). Sharing
// the outer realm's typed-array constructors makes tensors cross that boundary both ways.
'use strict';
const { TestEnvironment } = require('jest-environment-node');

const SHARED = [
  'ArrayBuffer',
  'Float32Array',
  'Float64Array',
  'Int8Array',
  'Uint8Array',
  'Uint16Array',
  'Int16Array',
  'Int32Array',
  'Uint32Array',
  'BigInt64Array',
  'BigUint64Array',
];

class SharedTypedArrayEnvironment extends TestEnvironment {
  constructor(config, context) {
    super(config, context);
    for (const name of SHARED) this.global[name] = globalThis[name];
  }
}

module.exports = SharedTypedArrayEnvironment;
