/** IEEE 754 half-precision conversion now lives with the graph library (fp16 model conversion uses it too). */
export { toFloat16Bits, fromFloat16Bits } from '@medsyn/onnx-graph';
