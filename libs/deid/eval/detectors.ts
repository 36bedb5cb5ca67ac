import { createDetector, PhiTagger, type PhiDetector } from '../src';

/** The detectors the harness and the benchmark can score, by the name given on the command line. */
export const DETECTOR_NAMES = ['rules', 'tagger', 'rules+tagger'] as const;
export type DetectorName = (typeof DETECTOR_NAMES)[number];

export async function detectorByName(name: DetectorName): Promise<PhiDetector> {
  return name === 'tagger' ? PhiTagger.load() : createDetector(name);
}
