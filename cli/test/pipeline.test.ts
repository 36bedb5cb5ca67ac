import { duration } from '../src/commands/pipeline';

describe('medsyn pipeline', () => {
  it('prints stage times as seconds, then minutes and seconds rounded as a whole (119.6 s is 2m00s)', () => {
    expect(duration(4.24)).toBe('4.2s');
    expect(duration(42.4)).toBe('42s');
    expect(duration(92.3)).toBe('1m32s');
    expect(duration(119.6)).toBe('2m00s');
    expect(duration(3599.7)).toBe('60m00s');
  });
});
