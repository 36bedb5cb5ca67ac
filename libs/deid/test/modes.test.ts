import { Anonymizer, InvalidReportError, parseDate, SurrogateGenerator } from '../src';

const SECRET = 'a-test-secret-of-32-bytes-length';
const anonymizer = new Anonymizer({ surrogateSecret: SECRET });
const REPORT =
  'INDICATION: 93-year-old with cough.\nCOMPARISON: 03/04/2021.\nFINDINGS: Discussed with Dr. Okafor at (617) 555-1234 on March 9, 2021. MRN 12345678. Transferred from Lakeside Medical Center, Boston, MA 02114.\nIMPRESSION: No acute process.';
const PHI = ['93', '03/04/2021', 'Okafor', '555-1234', 'March 9', '12345678', 'Lakeside', 'Boston', '02114'];

describe('output modes', () => {
  it('mask replaces every identifier with ___ and keeps the clinical text', async () => {
    const { text } = await anonymizer.anonymize({ id: 'r1', text: REPORT }, 'mask');
    expect(text).toBe(
      'INDICATION: ___-year-old with cough.\nCOMPARISON: ___.\nFINDINGS: Discussed with Dr. ___ at ___ on ___. MRN ___. Transferred from ___ Medical Center, ___, MA ___.\nIMPRESSION: No acute process.',
    );
  });

  it('tag replaces every identifier with its label', async () => {
    const { text } = await anonymizer.anonymize({ id: 'r1', text: REPORT }, 'tag');
    expect(text).toContain('[AGE]-year-old');
    expect(text).toContain(
      'Dr. [NAME] at [CONTACT] on [DATE]. MRN [ID]. Transferred from [LOCATION] Medical Center, [LOCATION], MA [LOCATION].',
    );
  });

  it('surrogate leaves none of the original identifiers and reads like a report', async () => {
    const { text } = await anonymizer.anonymize({ id: 'r1', text: REPORT, patientKey: 'p1' }, 'surrogate');
    for (const value of PHI) expect(text).not.toContain(value);
    expect(text).toMatch(/^INDICATION: 90-year-old with cough\.\nCOMPARISON: \d\d\/\d\d\/\d{4}\./);
    expect(text).toMatch(/Dr\. [A-Z][a-z]+ at \(\d{3}\) \d{3}-\d{4} on [A-Z][a-z]+ \d{1,2}, \d{4}\. MRN \d{8}\./);
  });

  it('gives the same surrogate to the same value within a patient, across reports', async () => {
    const a = (
      await anonymizer.anonymize(
        { id: 'a', text: 'Discussed with Dr. Okafor. MRN 12345678.', patientKey: 'p1' },
        'surrogate',
      )
    ).text;
    const b = (
      await anonymizer.anonymize(
        { id: 'b', text: 'Dr. Okafor reviewed it. MRN 12345678.', patientKey: 'p1' },
        'surrogate',
      )
    ).text;
    const nameA = /Dr\. (\w+)/.exec(a)![1];
    expect(/Dr\. (\w+)/.exec(b)![1]).toBe(nameA);
    expect(/MRN (\d+)/.exec(b)![1]).toBe(/MRN (\d+)/.exec(a)![1]);
    const other = await Promise.all(
      ['p2', 'p3', 'p4', 'p5'].map(
        async (p) =>
          /MRN (\d+)/.exec(
            (await anonymizer.anonymize({ id: 'c', text: 'MRN 12345678.', patientKey: p }, 'surrogate')).text,
          )![1],
      ),
    );
    expect(new Set(other).size).toBeGreaterThan(1);
  });

  it('shifts every date of a patient by one offset, so intervals survive', async () => {
    const text = 'Prior 03/04/2021 and 2021-04-15; today March 30, 2021.';
    const out = (await anonymizer.anonymize({ id: 'r', text, patientKey: 'p9' }, 'surrogate')).text;
    const dates = /Prior (\S+) and (\S+); today (.+)\.$/
      .exec(out)!
      .slice(1)
      .map((d) => parseDate(d)!.getTime());
    const day = 86_400_000;
    expect((dates[1]! - dates[0]!) / day).toBe(42);
    expect((dates[2]! - dates[0]!) / day).toBe(26);
    const shift = new SurrogateGenerator(SECRET).dateShiftDays('p9');
    expect((dates[0]! - Date.UTC(2021, 2, 4)) / day).toBe(shift);
    expect(Math.abs(shift)).toBeGreaterThanOrEqual(30);
  });

  it('needs a secret for surrogate mode', async () => {
    await expect(new Anonymizer().anonymize({ id: 'r', text: 'x' }, 'surrogate')).rejects.toThrow(InvalidReportError);
    expect(() => new SurrogateGenerator('short')).toThrow(/16 bytes/);
  });

  it('returns the spans found with offsets into the input and the rule that found them', async () => {
    const { spans } = await anonymizer.anonymize({ id: 'r1', text: REPORT }, 'mask');
    expect(spans.map((s) => REPORT.slice(s.start, s.end))).toEqual(
      expect.arrayContaining(['93', '03/04/2021', 'Okafor', '12345678']),
    );
    expect(spans.every((s) => s.rule.length > 0)).toBe(true);
  });
});

describe('bad input', () => {
  it('handles an empty report', async () => {
    const result = await anonymizer.anonymize({ id: 'e', text: '' }, 'mask');
    expect(result).toMatchObject({ text: '', spans: [], prompt: { text: '', truncated: false } });
  });

  it('replaces control characters and broken surrogates without moving offsets', async () => {
    const text = 'Dr. Okafor\u0000 saw\u0007 it \uD800 on 3/4.';
    const result = await anonymizer.anonymize({ id: 'c', text }, 'tag');
    expect(result.text).toBe('Dr. [NAME]  saw  it \uFFFD on [DATE].');
    expect(text.slice(result.spans[0]!.start, result.spans[0]!.end)).toBe('Okafor');
  });

  it('processes a non-English report', async () => {
    const result = await anonymizer.anonymize(
      { id: 'de', text: 'BEFUND: Kein Pneumothorax. Besprochen mit Dr. Müller am 03.04.2021.' },
      'mask',
    );
    expect(result.text).toBe('BEFUND: Kein Pneumothorax. Besprochen mit Dr. ___ am ___.');
  });

  it('refuses a text over the limit naming the field, not the text', async () => {
    const small = new Anonymizer({ maxTextLength: 10 });
    await expect(small.anonymize({ id: 'big', text: 'Dr. Okafor was here.' })).rejects.toThrow(
      /^text: is longer than 10 characters$/,
    );
  });

  it('processes a 10 MB report', async () => {
    const text = 'FINDINGS: Clear lungs. Discussed with Dr. Okafor on 3/4. '.repeat(180_000);
    const result = await anonymizer.anonymize({ id: 'big', text }, 'mask');
    expect(result.text).not.toContain('Okafor');
    expect(result.spans.length).toBe(360_000);
  });
});
