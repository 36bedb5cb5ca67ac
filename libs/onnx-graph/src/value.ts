import type { DType } from './dtype';
import type { Tensor } from './tensor';

/** A dimension: a size, or a symbol for a size known only at run time (e.g. "batch"). */
export type Dim = number | string;
export type Shape = readonly Dim[];

/** A typed tensor value flowing through a graph. Ranks are always known; sizes may be symbolic. */
export interface Value {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: Shape;
}

/** An attribute value, typed as ONNX types it. */
export type Attr =
  | { type: 'int'; value: number }
  | { type: 'float'; value: number }
  | { type: 'string'; value: string }
  | { type: 'ints'; value: number[] }
  | { type: 'floats'; value: number[] }
  | { type: 'strings'; value: string[] }
  | { type: 'tensor'; value: Tensor };

export type Attrs = Record<string, Attr>;

/** Attribute constructors: `{ axis: attr.int(1), alpha: attr.float(0.2) }`. */
export const attr = {
  int: (value: number): Attr => ({ type: 'int', value }),
  float: (value: number): Attr => ({ type: 'float', value }),
  string: (value: string): Attr => ({ type: 'string', value }),
  ints: (value: number[]): Attr => ({ type: 'ints', value }),
  floats: (value: number[]): Attr => ({ type: 'floats', value }),
  strings: (value: string[]): Attr => ({ type: 'strings', value }),
  tensor: (value: Tensor): Attr => ({ type: 'tensor', value }),
};

/** One operator application. An empty input name means an omitted optional input. */
export interface GraphNode {
  readonly op: string;
  readonly name: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly attrs: Attrs;
  readonly domain: string;
}

export const isStaticShape = (shape: Shape): shape is readonly number[] => shape.every((d) => typeof d === 'number');
export const formatShape = (shape: Shape): string => `[${shape.join(', ')}]`;
