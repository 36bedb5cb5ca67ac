/** Canonical report sections, as in MIMIC-CXR and IU/OpenI reports. */
export type SectionName = 'INDICATION' | 'TECHNIQUE' | 'COMPARISON' | 'FINDINGS' | 'IMPRESSION' | 'OTHER';

export interface ReportSection {
  name: SectionName;
  /** The heading as written ("" for text before any heading). */
  heading: string;
  text: string;
  /** Offsets of the body in the report (UTF-16). */
  start: number;
  end: number;
}

/** Headings (lower case, colon-free) by the section they open: MIMIC, IU/OpenI and free-form wording. */
const HEADINGS: Record<Exclude<SectionName, 'OTHER'>, string[]> = {
  INDICATION: [
    'indication',
    'indications',
    'clinical indication',
    'history',
    'clinical history',
    'reason for exam',
    'reason for examination',
    'reason for study',
    'reason',
    'clinical information',
    'clinical data',
    'clinical details',
    'hx',
    'clinical notes',
    'reason for referral',
  ],
  TECHNIQUE: ['technique', 'examination', 'exam', 'procedure', 'views', 'study', 'protocol'],
  COMPARISON: ['comparison', 'comparisons', 'prior', 'priors', 'prior studies', 'prior study', 'compared'],
  FINDINGS: ['findings', 'finding', 'report', 'description', 'findings and impression'],
  IMPRESSION: [
    'impression',
    'impressions',
    'conclusion',
    'conclusions',
    'summary',
    'opinion',
    'assessment',
    'diagnosis',
    'interpretation',
    'final impression',
  ],
};
const CANONICAL = new Map<string, SectionName>(
  Object.entries(HEADINGS).flatMap(([name, words]) => words.map((w) => [w, name as SectionName])),
);

/**
 * A heading: a known heading word at a line start or after a sentence, followed by a colon
 * ("FINDINGS:", "Impression:"), or a known heading alone on its line in capitals ("IMPRESSION").
 */
const HEADING =
  /(?:^|(?<=[.\n]\s*))[ \t]*(?<h>[A-Za-z][A-Za-z /&-]{1,40}?)[ \t]*:|^[ \t]*(?<caps>[A-Z][A-Z /&-]{2,40}?)[ \t]*$/gm;

/** Splits a report into sections; text before the first heading (or a report without any) is OTHER. */
export function parseSections(text: string): ReportSection[] {
  const marks: { name: SectionName; heading: string; start: number; bodyStart: number }[] = [];
  for (const match of text.matchAll(HEADING)) {
    const heading = (match.groups!.h ?? match.groups!.caps!).trim();
    const name = CANONICAL.get(heading.toLowerCase().replace(/\s+/g, ' '));
    if (!name) continue;
    const headingStart = match.index + match[0].indexOf(heading);
    marks.push({ name, heading, start: headingStart, bodyStart: match.index + match[0].length });
  }
  const sections: ReportSection[] = [];
  const push = (name: SectionName, heading: string, start: number, end: number) => {
    const body = text.slice(start, end);
    const lead = body.length - body.trimStart().length;
    const trimmed = body.trim();
    if (trimmed || heading)
      sections.push({ name, heading, text: trimmed, start: start + lead, end: start + lead + trimmed.length });
  };
  if (marks.length === 0 || marks[0]!.start > 0) push('OTHER', '', 0, marks[0]?.start ?? text.length);
  marks.forEach((mark, i) => push(mark.name, mark.heading, mark.bodyStart, marks[i + 1]?.start ?? text.length));
  return sections;
}
