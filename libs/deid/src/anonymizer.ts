import { defaultClipTokenizer } from '@medsyn/clip-tokenizer';
import { createDetector } from './default-detector';
import { buildPrompt, type ClipTokenCounter, type GeneratorPrompt } from './prompt';
import { parseSections, type SectionName } from './sections';
import { SurrogateGenerator } from './surrogates';
import type { OutputMode, PhiDetector, PhiSpan } from './types';

export interface ReportInput {
  /** Caller's opaque id (never PHI): echoed in results and errors. */
  id: string;
  text: string;
  /** Surrogates and date shifts are consistent per patient key. */
  patientKey?: string;
}

export interface AnonymizedReport {
  id: string;
  text: string;
  /** Identifiers found, in UTF-16 offsets of the input text. */
  spans: PhiSpan[];
  sections: { name: SectionName; heading: string; text: string }[];
  prompt: GeneratorPrompt;
}

/** A report that cannot be processed; the message names the field and never quotes the text. */
export class InvalidReportError extends Error {
  constructor(
    readonly field: string,
    problem: string,
    readonly recordId = '',
  ) {
    super(`${field}: ${problem}`);
    this.name = 'InvalidReportError';
  }
}

export interface AnonymizerOptions {
  /** Default: the rules with the shipped PHI tagger (`createDetector()`). */
  detector?: PhiDetector;
  /** Key of the surrogate HMAC (at least 16 bytes); surrogate mode needs it. */
  surrogateSecret?: string | Buffer;
  /** Counts prompt tokens; default: CLIP's real vocabulary from @medsyn/clip-tokenizer. */
  tokenCounter?: ClipTokenCounter;
  /** Longest text accepted, in UTF-16 code units (default 32 Mi). */
  maxTextLength?: number;
}

const MASK = '___';

/**
 * De-identifies reports: finds identifiers, replaces them (mask, tag or surrogate), splits the
 * result into sections and builds the generator prompt from it.
 */
export class Anonymizer {
  private readonly detector: PhiDetector;
  private readonly surrogates?: SurrogateGenerator;
  private tokenCounter?: ClipTokenCounter;
  private readonly maxTextLength: number;

  constructor(options: AnonymizerOptions = {}) {
    this.detector = options.detector ?? createDetector();
    this.surrogates =
      options.surrogateSecret !== undefined ? new SurrogateGenerator(options.surrogateSecret) : undefined;
    this.tokenCounter = options.tokenCounter;
    this.maxTextLength = options.maxTextLength ?? 32 * 1024 * 1024;
  }

  /** Whether surrogate mode can be used (a secret was configured). */
  get hasSurrogates(): boolean {
    return this.surrogates !== undefined;
  }

  async anonymize(report: ReportInput, mode: OutputMode = 'mask'): Promise<AnonymizedReport> {
    const id = report.id ?? '';
    if (typeof report.text !== 'string') throw new InvalidReportError('text', 'must be a string', id);
    if (report.text.length > this.maxTextLength)
      throw new InvalidReportError('text', `is longer than ${this.maxTextLength} characters`, id);
    if (mode === 'surrogate' && !this.surrogates)
      throw new InvalidReportError('mode', 'surrogate mode needs a surrogate secret in the configuration', id);
    const text = sanitize(report.text);
    const spans = await this.detector.detect(text);
    const output = this.replace(text, spans, mode, report.patientKey ?? '');
    const sections = parseSections(output);
    this.tokenCounter ??= defaultClipTokenizer();
    return {
      id,
      text: output,
      spans,
      sections: sections.map(({ name, heading, text: body }) => ({ name, heading, text: body })),
      prompt: buildPrompt(sections, this.tokenCounter),
    };
  }

  private replace(text: string, spans: PhiSpan[], mode: OutputMode, patientKey: string): string {
    let out = '';
    let at = 0;
    for (const span of spans) {
      const value = text.slice(span.start, span.end);
      out += text.slice(at, span.start);
      out +=
        mode === 'mask' ? MASK : mode === 'tag' ? `[${span.label}]` : this.surrogates!.replace(span, value, patientKey);
      at = span.end;
    }
    return out + text.slice(at);
  }
}

/**
 * Lone surrogates (text that was not valid UTF-16) become U+FFFD and control characters other
 * than tab and line breaks become spaces; lengths stay, so offsets still point into the input.
 */
export function sanitize(text: string): string {
  return text
    .replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD')
    .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/g, ' ');
}
