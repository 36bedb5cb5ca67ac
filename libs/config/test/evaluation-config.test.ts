import { parseEvaluationConfig, parseEvaluationConfigWithoutEncoders } from '../src';

const settings = { dataset: { format: 'csv', root: '/data' }, tasks: ['classification' as const] };

describe('evaluation config', () => {
  it('requires encoders, checked before the rest', () => {
    expect(() => parseEvaluationConfig({ tasks: [] })).toThrow(/^encoders: at least one encoder/);
  });

  it('checks a section whose encoders do not exist yet, with the same defaults', () => {
    const withEncoders = parseEvaluationConfig({ ...settings, encoders: [{ name: 'a', bundle: 'bundles/a' }] });
    const { encoders, ...rest } = withEncoders;
    expect(encoders).toEqual([{ name: 'a', bundle: 'bundles/a' }]);
    expect(parseEvaluationConfigWithoutEncoders(settings)).toEqual(rest);
    expect(() => parseEvaluationConfigWithoutEncoders({ ...settings, tasks: ['tanning'] })).toThrow(/tasks\[0\]/);
  });
});
