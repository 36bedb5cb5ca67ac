import { completeSpans } from '../src/completion';
import type { PhiLabel, PhiSpan } from '../src';

/** The spans of `found` (words of text, with labels) completed, as the words they cover. */
function complete(text: string, found: [PhiLabel, string][]): string[] {
  const spans: PhiSpan[] = found.map(([label, word]) => ({
    start: text.indexOf(word),
    end: text.indexOf(word) + word.length,
    label,
    rule: 'test',
  }));
  return completeSpans(text, spans).map((s) => text.slice(s.start, s.end));
}

describe('completeSpans', () => {
  it('takes the given name and initial before a surname found', () => {
    expect(complete('note by ellen j. vasquez rn', [['NAME', 'vasquez']])).toEqual(['ellen j. vasquez']);
    expect(complete('called Nina Okafor today', [['NAME', 'Okafor']])).toEqual(['Nina Okafor']);
  });

  it('takes an unknown surname after a given name found, in its case', () => {
    expect(complete('nina okafor aware of k', [['NAME', 'nina']])).toEqual(['nina okafor']);
    expect(complete('nina Okafor aware', [['NAME', 'nina']])).toEqual(['nina']);
  });

  it('leaves words, relatives, credentials and capitalised English given names out', () => {
    expect(complete('nina aware of plan', [['NAME', 'nina']])).toEqual(['nina']);
    expect(complete('son OKAFOR called', [['NAME', 'OKAFOR']])).toEqual(['OKAFOR']);
    expect(complete('WILL SMITH CALL BACK', [['NAME', 'SMITH']])).toEqual(['SMITH']);
    expect(complete('okafor rn', [['NAME', 'okafor']])).toEqual(['okafor']);
  });

  it('stops at a line break', () => {
    expect(complete('ellen\nvasquez aware', [['NAME', 'vasquez']])).toEqual(['vasquez']);
  });

  it('takes a place-name generic after a place found, but not what kind of place it is', () => {
    expect(complete('FOUND AT HOME IN MILFORD MILL BY EMS', [['LOCATION', 'MILFORD']])).toEqual(['MILFORD MILL']);
    expect(complete('sent to Harbor Hospital', [['LOCATION', 'Harbor']])).toEqual(['Harbor']);
    expect(complete('sent to Union memorial', [['LOCATION', 'Union']])).toEqual(['Union']);
  });

  it('takes the one word between a place found and an institution type word', () => {
    expect(complete('came from holy spirit hosp today', [['LOCATION', 'holy']])).toEqual(['holy spirit']);
    expect(complete('TO ST LUKE MEDICAL CENTER', [['LOCATION', 'ST']])).toEqual(['ST LUKE']);
    // Not two words, not across a case change, and the type word itself stays out.
    expect(complete('from Avon heart and lung hospital', [['LOCATION', 'Avon']])).toEqual(['Avon']);
    expect(complete('from Avon HEART hospital', [['LOCATION', 'Avon']])).toEqual(['Avon']);
    expect(complete('from Avon hospital clinic', [['LOCATION', 'Avon']])).toEqual(['Avon']);
  });
});
