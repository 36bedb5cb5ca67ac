import type { Value } from '@medsyn/onnx-graph';
import { attention, dropout, embedding, layerNorm, linear, type ModelBuilder } from './builder';

export interface BertConfig {
  vocabSize: number;
  hidden: number;
  layers: number;
  heads: number;
  intermediate: number;
  /** Tokens per input; sequences are padded to it (positions 0..maxLength-1). */
  maxLength: number;
  /** Size of the position table (BERT: 512); at least maxLength. */
  maxPositions?: number;
  /** A classification head `classifier` on the pooled output (omit for an encoder). */
  classes?: number;
  /** hidden_dropout_prob and attention_probs_dropout_prob (BERT: 0.1; default 0). */
  dropout?: number;
}

/** ClinicalBERT / BERT-base sizes, and a tiny one for CPU tests. */
export const BERT_PRESETS = {
  base: { vocabSize: 28996, hidden: 768, layers: 12, heads: 12, intermediate: 3072, maxLength: 128, maxPositions: 512 },
  tiny: { vocabSize: 8000, hidden: 128, layers: 4, heads: 4, intermediate: 512, maxLength: 128, maxPositions: 512 },
} satisfies Record<string, BertConfig>;

export interface BertOutputs {
  /** Hidden states of every token [batch, tokens, hidden] (for word-level alignment). */
  tokens: Value;
  /** tanh(dense(first token)) [batch, hidden], BERT's pooled output. */
  pooled: Value;
  logits?: Value;
}

/**
 * A BERT-style text encoder (Devlin et al. 2019) with the Hugging Face parameter names
 * (`embeddings.word_embeddings.weight`, `encoder.layer.0.attention.self.query.weight`...), so
 * BERT / ClinicalBERT checkpoints map by name. Inputs: WordPiece ids [batch, maxLength] (int64)
 * and an attention mask [batch, maxLength] (1 for tokens, 0 for padding).
 */
export function bert(b: ModelBuilder, inputIds: Value, attentionMask: Value, config: BertConfig): BertOutputs {
  const { g, o } = b;
  const d = config.hidden;
  const positions = o.const(
    'int64',
    [config.maxLength],
    Array.from({ length: config.maxLength }, (_, i) => i),
  );
  const segments = o.const('int64', [config.maxLength], new Array(config.maxLength).fill(0));
  let h = g.scope('embeddings', () => {
    const words = embedding(b, 'word_embeddings', inputIds, config.vocabSize, d, 0.02);
    const position = embedding(b, 'position_embeddings', positions, config.maxPositions ?? 512, d, 0.02);
    const segment = embedding(b, 'token_type_embeddings', segments, 2, d, 0.02);
    return dropout(b, layerNorm(b, 'LayerNorm', o.add(o.add(words, position), segment), d, 1e-12), config.dropout ?? 0);
  });
  // Padding gets -10000 before the softmax (the original BERT's additive mask), as [batch, 1, 1, tokens].
  const mask = o.unsqueeze(
    o.mul(o.sub(o.scalar('float32', 1), o.cast(attentionMask, 'float32')), o.scalar('float32', -10000)),
    [1, 2],
  );
  g.scope('encoder', () =>
    g.scope('layer', () => {
      for (let i = 0; i < config.layers; i++) h = g.scope(String(i), () => bertLayer(b, h, mask, config));
    }),
  );
  const pooled = g.scope('pooler', () => o.tanh(linear(b, 'dense', o.squeeze(o.slice(h, [0], [1], [1]), [1]), d, d)));
  const logits = config.classes ? linear(b, 'classifier', pooled, d, config.classes) : undefined;
  return { tokens: h, pooled, logits };
}

function bertLayer(b: ModelBuilder, x: Value, mask: Value, config: BertConfig): Value {
  const { g, o } = b;
  const d = config.hidden;
  const attended = g.scope('attention', () => {
    const rate = config.dropout ?? 0;
    const context = g.scope('self', () =>
      attention(
        b,
        linear(b, 'query', x, d, d),
        linear(b, 'key', x, d, d),
        linear(b, 'value', x, d, d),
        config.heads,
        mask,
        rate,
      ),
    );
    return g.scope('output', () =>
      layerNorm(b, 'LayerNorm', o.add(dropout(b, linear(b, 'dense', context, d, d), rate), x), d, 1e-12),
    );
  });
  const intermediate = g.scope('intermediate', () => o.gelu(linear(b, 'dense', attended, d, config.intermediate)));
  return g.scope('output', () =>
    layerNorm(
      b,
      'LayerNorm',
      o.add(dropout(b, linear(b, 'dense', intermediate, config.intermediate, d), config.dropout ?? 0), attended),
      d,
      1e-12,
    ),
  );
}
