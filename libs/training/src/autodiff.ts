import { isFloat, ops, tensor, type GraphBuilder, type Value } from '@medsyn/onnx-graph';
import { GradContext } from './grad-context';
import { GRADIENTS } from './gradients';

/** Thrown at graph-build time when the loss depends on an operator without a gradient rule. */
export class UnsupportedGradientError extends Error {}

/** Annotation that makes a node's outputs constants to autodiff (PyTorch's `detach()`, `torch.no_grad()`). */
export const STOP_GRADIENT = 'stopGradient';

/** x as a value gradients do not flow through (an Identity node annotated STOP_GRADIENT). */
export function stopGradient(g: GraphBuilder, x: Value): Value {
  const y = g.op('Identity', [x]);
  g.annotations.set(g.producerOf(y).name, { [STOP_GRADIENT]: true });
  return y;
}

/**
 * Reverse-mode autodiff over a graph being built: appends to g the nodes that compute
 * d(loss)/d(each of wrt), and returns those gradient values by parameter name.
 *
 * Walks the nodes between wrt and loss in reverse topological order (nodes are appended in
 * topological order), applies each op's rule from GRADIENTS, and sums gradients that reach a
 * value along several paths. Branches that do not lead to the loss, or do not depend on wrt, are
 * pruned. A parameter the loss does not depend on gets a zero gradient.
 */
export function gradients(g: GraphBuilder, loss: Value, wrt: readonly Value[]): Map<string, Value> {
  if (loss.shape.length !== 0 && !(loss.shape.length === 1 && loss.shape[0] === 1)) {
    throw new Error(`the loss ${loss.name} must be a scalar, got shape [${loss.shape}]`);
  }
  const o = ops(g);
  const nodeCount = g.nodes.length;

  // Values that depend on a parameter through float math.
  const dependsOnWrt = new Set(wrt.map((v) => v.name));
  for (const node of g.nodes) {
    if (g.annotations.get(node.name)?.[STOP_GRADIENT]) continue;
    if (node.inputs.some((i) => dependsOnWrt.has(i)))
      for (const out of node.outputs) if (isFloat(g.value(out).dtype)) dependsOnWrt.add(out);
  }
  // Values the loss depends on.
  const feedsLoss = new Set([loss.name]);
  for (let i = nodeCount - 1; i >= 0; i--) {
    const node = g.nodes[i]!;
    if (node.outputs.some((out) => feedsLoss.has(out)))
      for (const input of node.inputs) if (input) feedsLoss.add(input);
  }

  const pending = new Map<string, Value[]>();
  const collected = (name: string): Value | undefined => {
    const parts = pending.get(name);
    if (!parts || parts.length === 0) return undefined;
    const total = o.sum(...parts);
    pending.set(name, [total]);
    return total;
  };

  g.scope('grad', () => {
    pending.set(loss.name, [o.const(loss.dtype, [...loss.shape] as number[], [1])]);
    for (let i = nodeCount - 1; i >= 0; i--) {
      const node = g.nodes[i]!;
      if (!node.outputs.some((out) => feedsLoss.has(out) && dependsOnWrt.has(out))) continue;
      const dy = node.outputs.map((out) => collected(out));
      if (dy.every((d) => d === undefined)) continue;
      const rule = GRADIENTS[node.op];
      if (!rule) {
        throw new UnsupportedGradientError(
          `no gradient rule for ${node.op} (node ${node.name}); the loss depends on it through a trainable parameter`,
        );
      }
      const inputs = node.inputs.map((name) => (name ? g.value(name) : undefined));
      const wanted = inputs.map((v) => v !== undefined && dependsOnWrt.has(v.name));
      // Named after the node they differentiate (grad.<node>.<op>), so profiles attribute backward time.
      const grads = g.scope(node.name, () =>
        rule(
          new GradContext(
            g,
            o,
            node,
            inputs,
            node.outputs.map((n) => g.value(n)),
            dy,
            wanted,
          ),
        ),
      );
      grads.forEach((grad, k) => {
        const input = inputs[k];
        if (!grad || !input || !wanted[k]) return;
        pending.set(input.name, [...(pending.get(input.name) ?? []), grad]);
      });
    }
  });

  const result = new Map<string, Value>();
  g.scope('grad', () => {
    for (const w of wrt)
      result.set(w.name, collected(w.name) ?? g.constant(tensor(w.dtype, w.shape as number[]), `zero_${w.name}`));
  });
  return result;
}
