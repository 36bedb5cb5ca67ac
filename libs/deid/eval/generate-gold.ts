/**
 * Deterministic generator of gold-standard radiology reports with PHI injected in many formats,
 * including adversarial ones (names that are words, dates inside sentences, identifiers next to
 * measurements), around clinical text that must survive (eponyms, levels, measurements, devices).
 *
 *   node --conditions=medsyn-source --import tsx libs/deid/eval/generate-gold.ts --seed 2 --count 2000 --out tmp/gold-test.jsonl
 *
 * Same seed, same file. Names and places come from faker (seeded), not from the detector's
 * census lists, so the dictionaries are not graded on their own words. Offsets are code points.
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { faker } from '@faker-js/faker';
import type { PhiLabel } from '../src';
import { MONTH_NAMES } from '../src/surrogates';
import type { GoldRecord } from './gold-format';

type Piece = string | { label: PhiLabel; value: string };
type Sentence = () => Piece[];

const pick = <T>(items: readonly T[]): T => faker.helpers.arrayElement(items);
const chance = (p: number) => faker.number.float({ min: 0, max: 1 }) < p;
const phi = (label: PhiLabel, value: string): Piece => ({ label, value });

const ordinal = (d: number) =>
  `${d}${d % 10 === 1 && d !== 11 ? 'st' : d % 10 === 2 && d !== 12 ? 'nd' : d % 10 === 3 && d !== 13 ? 'rd' : 'th'}`;
const pad = (n: number) => String(n).padStart(2, '0');
/** Names that are also English words: the adversarial case for dictionaries. */
const WORD_NAMES = [
  'Brown',
  'White',
  'Green',
  'Black',
  'Hill',
  'Rose',
  'Bush',
  'Long',
  'Wood',
  'Moody',
  'Rich',
  'Young',
  'King',
  'Small',
  'Hope',
  'Sharp',
  'Bright',
  'Frost',
  'Lamb',
  'Fox',
  'Bell',
  'Church',
  'Hall',
  'Strong',
  'Gay',
  'Love',
  'Lane',
  'Marsh',
  'Stone',
  'Wolf',
];
const WORD_FIRST = [
  'Will',
  'Mark',
  'Grace',
  'Hope',
  'Faith',
  'June',
  'Joy',
  'Rose',
  'Bill',
  'Art',
  'Dawn',
  'Summer',
  'Frank',
  'Drew',
  'Ray',
  'Dean',
  'Chase',
  'Hunter',
  'Pat',
  'Sue',
];

function date(): string {
  const d = faker.date.between({ from: '2015-01-01', to: '2025-12-31' });
  const [y, m, day] = [d.getFullYear(), d.getMonth() + 1, d.getDate()];
  const month = MONTH_NAMES[m - 1]!;
  return pick([
    `${m}/${day}/${y}`,
    `${pad(m)}/${pad(day)}/${y}`,
    `${m}/${day}/${String(y).slice(2)}`,
    `${y}-${pad(m)}-${pad(day)}`,
    `${m}/${day}`,
    `${month} ${day}, ${y}`,
    `${month} ${ordinal(day)}`,
    `${month.slice(0, 3)} ${day}`,
    `${day} ${month.slice(0, 3)} ${y}`,
    `${day} ${month}`,
    `${ordinal(day)} of ${month}`,
    `${pad(day)}-${month.slice(0, 3).toUpperCase()}-${y}`,
    `${pad(m)}.${pad(day)}.${y}`,
    `${month} ${y}`,
    `${m}/${y}`,
    `${month.slice(0, 3)}. ${day}, ${y}`,
  ]);
}
const time = () =>
  pick([
    `${faker.number.int({ min: 1, max: 12 })}:${pad(faker.number.int(59))} ${pick(['AM', 'PM', 'a.m.', 'p.m.'])}`,
    `${pad(faker.number.int(23))}:${pad(faker.number.int(59))}`,
    `${pad(faker.number.int(23))}${pad(faker.number.int(59))} hours`,
  ]);
const last = () => (chance(0.2) ? pick(WORD_NAMES) : faker.person.lastName());
const first = () => (chance(0.15) ? pick(WORD_FIRST) : faker.person.firstName());
function personName(): string {
  return pick([
    `${first()} ${last()}`,
    `${first()} ${faker.string.alpha({ casing: 'upper' })}. ${last()}`,
    `${first().charAt(0)}. ${last()}`,
    last(),
    `${last()}, ${first()}`,
  ]);
}
const doctor = (): Piece[] => [
  `${pick(['Dr.', 'Dr', 'Doctor'])} `,
  phi('NAME', chance(0.5) ? last() : `${first()} ${last()}`),
];
const age = () => String(faker.number.int({ min: 90, max: 104 }));
const phone = () =>
  pick([
    `(${faker.string.numeric(3)}) ${faker.string.numeric(3)}-${faker.string.numeric(4)}`,
    `${faker.string.numeric(3)}-${faker.string.numeric(3)}-${faker.string.numeric(4)}`,
    `${faker.string.numeric(3)}.${faker.string.numeric(3)}.${faker.string.numeric(4)}`,
    `+1 ${faker.string.numeric(3)} ${faker.string.numeric(3)} ${faker.string.numeric(4)}`,
    `+44 20 ${faker.string.numeric(4)} ${faker.string.numeric(4)}`,
  ]);
const mrn = () =>
  pick([
    faker.string.numeric(7),
    faker.string.numeric(8),
    `${faker.string.alpha({ casing: 'upper', length: 2 })}${faker.string.numeric(6)}`,
    `${faker.string.numeric(3)}-${faker.string.numeric(2)}-${faker.string.numeric(4)}`.replace(/^/, 'M'),
  ]);
const hospital = () =>
  pick([
    `${faker.person.lastName()} ${pick(['Hospital', 'Medical Center', 'Memorial Hospital', 'Clinic', 'Health System', 'Imaging Center', 'Regional Medical Center'])}`,
    `St. ${faker.person.firstName()}'s Hospital`,
    `${faker.location.city()} General Hospital`,
    `University of ${faker.location.city()} Medical Center`,
  ]);
const city = () => faker.location.city();
const state = () => faker.location.state({ abbreviated: chance(0.7) });

/** Clinical sentences that must survive untouched. */
const CLINICAL = [
  'Swan-Ganz catheter tip projects over the right descending pulmonary artery.',
  'Kerley B lines suggest interstitial edema.',
  'Dobbhoff tube terminates in the stomach.',
  'Morgagni hernia is unchanged in size.',
  'Known Chiari I malformation.',
  'History of Hodgkin lymphoma status post mantle radiation.',
  'Compression deformity of T12 is unchanged.',
  'Degenerative disc disease at C5-6 and L4-L5.',
  'Healing fracture of the left 7th rib.',
  'Old fractures of the right 4th and 5th ribs.',
  'A 3.2 cm mass in the right upper lobe.',
  'A 10 mm nodule in the left lower lobe.',
  'Endotracheal tube tip 4 cm above the carina.',
  'Right internal jugular central venous catheter tip at the cavoatrial junction.',
  'Left PICC terminates in the SVC.',
  'Compared to the prior study, there is no significant change.',
  'Heart size is normal.',
  'No pneumothorax or pleural effusion.',
  'Mild bibasilar atelectasis.',
  'The lungs are clear.',
  'Moderate cardiomegaly with pulmonary vascular congestion.',
  'Sternotomy wires are intact.',
  'Dual-chamber pacemaker leads in the right atrium and ventricle.',
  'Nasogastric tube courses below the diaphragm.',
  'Patient on amiodarone and heparin.',
  'Study performed portably at 14:35 in the ICU.',
  'Right lower lobe opacity, 2.5 x 1.8 cm.',
  'Small left pleural effusion has increased since the prior exam.',
  'Calcified granuloma in the right midlung.',
  'Scoliosis convex to the right.',
  'Emphysema with bullae at the apices.',
  'Pancoast tumor is not excluded.',
  'Hampton hump configuration is not seen.',
  'Sengstaken-Blakemore tube in place.',
  'Pleurx catheter in the right hemithorax.',
  'Jackson-Pratt drain overlies the right upper quadrant.',
  'Impella device in expected position.',
  'Watchman device projects over the left atrial appendage.',
  'Fleischner criteria apply.',
  'Widened mediastinum measuring 9 cm.',
  'Interval placement of a left chest tube.',
  'Follow-up CT in 3 months is recommended.',
  'Findings were reviewed with the emergency department.',
  'No acute cardiopulmonary process.',
  'Aortic knob calcification.',
  'Postoperative changes of CABG.',
  'Hyperinflated lungs consistent with COPD.',
  'Lines and tubes as above.',
  'Grade 2 spondylolisthesis of L5 on S1.',
];

const HISTORY: Sentence[] = [
  () => [
    phi('AGE', age()),
    pick(['-year-old ', ' year old ', ' yo ']),
    pick(['woman', 'man', 'female', 'male']),
    ' with ',
    pick(['shortness of breath.', 'cough and fever.', 'chest pain.', 'fall.']),
  ],
  () => ['Patient is ', phi('AGE', age()), ' years old with worsening dyspnea.'],
  () => ['Aged ', phi('AGE', age()), ', presenting after a fall on ', phi('DATE', date()), '.'],
  () => [phi('AGE', age()), pick(['M', 'F', ' M', ' F']), ' with pneumonia.'],
  () => ['Fever since the ', phi('DATE', ordinal(faker.number.int({ min: 1, max: 28 }))), ', now with cough.'],
  () => ['Patient fell on ', phi('DATE', date()), ' and has had rib pain since.'],
  () => ['Transferred from ', phi('LOCATION', hospital()), ' on ', phi('DATE', date()), '.'],
  () => ['Patient lives in ', phi('LOCATION', city()), ' and recently traveled.'],
  () => ['Referred by ', ...doctor(), ' at ', phi('LOCATION', hospital()), '.'],
  () => ['Lung cancer diagnosed in 2019, treated at ', phi('LOCATION', hospital()), '.'],
  () => [
    "Patient's ",
    pick(['daughter', 'son', 'wife', 'husband']),
    ' ',
    phi('NAME', `${first()} ${last()}`),
    ' reports new confusion.',
  ],
  () => ['Evaluate line placement. Ordering physician: ', phi('NAME', personName()), '.'],
];

const COMPARISON: Sentence[] = [
  () => [phi('DATE', date()), '.'],
  () => ['Prior radiograph dated ', phi('DATE', date()), '.'],
  () => ['Chest CT from ', phi('DATE', date()), ' performed at ', phi('LOCATION', hospital()), '.'],
  () => ['None.'],
  () => [
    'Outside films from ',
    phi('LOCATION', hospital()),
    ', ',
    phi('LOCATION', city()),
    ', ',
    state(),
    ' dated ',
    phi('DATE', date()),
    '.',
  ],
];

const IN_BODY: Sentence[] = [
  () => ['Findings were discussed with ', ...doctor(), ' by telephone at ', time(), ' on ', phi('DATE', date()), '.'],
  () => ['These results were called to ', phi('NAME', personName()), ' at ', time(), '.'],
  () => [
    'Discussed with ',
    phi('NAME', `${first().charAt(0)}. ${last()}`),
    ', RN, at pager ',
    phi('CONTACT', faker.string.numeric(5)),
    '.',
  ],
  () => ['Case reviewed with ', ...doctor(), ' and ', ...doctor(), '.'],
  () => ['Communicated to ', phi('NAME', `${first()} ${last()}`), ', NP, at ', phi('CONTACT', phone()), '.'],
  () => ['Compared with the study of ', phi('DATE', date()), ', the 3.2 cm mass is larger.'],
  () => ['Since ', phi('DATE', date()), ', the effusion has decreased.'],
  () => [
    'The ',
    phi('DATE', `${MONTH_NAMES[faker.number.int(11)]} ${ordinal(faker.number.int({ min: 1, max: 28 }))}`),
    ' study showed a 10 mm nodule (accession ',
    phi('ID', faker.string.numeric(9)),
    ').',
  ],
  () => [
    'Pacemaker generator (serial number ',
    phi('ID', `${faker.string.alpha({ casing: 'upper', length: 3 })}${faker.string.numeric(6)}`),
    ') in the left chest wall.',
  ],
  () => ['Dr. ', phi('NAME', pick(WORD_NAMES)), ' agrees with the recommendation for follow-up in 6 weeks.'],
  () => [phi('NAME', `${pick(WORD_FIRST)} ${pick(WORD_NAMES)}`), ', PA-C, placed the chest tube at ', time(), '.'],
  () => ['Images were sent to ', phi('CONTACT', faker.internet.email()), ' for review.'],
];

const FOOTER: Sentence[] = [
  () => ['Dictated by: ', phi('NAME', `${first()} ${last()}`), ', MD'],
  () => ['Electronically signed by ', ...doctor(), ' on ', phi('DATE', date()), ' at ', time(), '.'],
  () => ['Attending radiologist: ', phi('NAME', personName())],
  () => [
    'Patient: ',
    phi('NAME', `${faker.person.lastName().toUpperCase()}, ${faker.person.firstName().toUpperCase()}`),
    '   MRN: ',
    phi('ID', mrn()),
    '   DOB: ',
    phi('DATE', date()),
  ],
  () => [
    'MRN ',
    phi('ID', mrn()),
    '; Acc# ',
    phi('ID', faker.string.numeric(8)),
    '; Account number ',
    phi('ID', faker.string.numeric(10)),
  ],
  () => ['Questions: call the reading room at ', phi('CONTACT', phone()), ' or fax ', phi('CONTACT', phone()), '.'],
  () => ['Reading room extension x', phi('CONTACT', faker.string.numeric(4)), '.'],
  () => [
    'Images: ',
    phi('CONTACT', `https://pacs.${faker.internet.domainWord()}.org/study/${faker.string.numeric(6)}`),
    ' (workstation ',
    phi('CONTACT', faker.internet.ipv4()),
    ')',
  ],
  () => [
    'Patient address: ',
    phi('LOCATION', faker.location.streetAddress()),
    ', ',
    phi('LOCATION', city()),
    ', ',
    faker.location.state({ abbreviated: true }),
    ' ',
    phi('LOCATION', faker.location.zipCode('#####')),
    '.',
  ],
  () => [
    'SSN ',
    phi('ID', `${faker.string.numeric(3)}-${faker.string.numeric(2)}-${faker.string.numeric(4)}`),
    '; health plan ID ',
    phi('ID', `${faker.string.alpha({ casing: 'upper', length: 3 })}${faker.string.numeric(9)}`),
  ],
  () => [
    'Driver license ',
    phi('ID', `${faker.string.alpha({ casing: 'upper' })}${faker.string.numeric(7)}`),
    ', vehicle plate ',
    phi(
      'ID',
      `${faker.string.numeric(1)}${faker.string.alpha({ casing: 'upper', length: 3 })}${faker.string.numeric(3)}`,
    ),
    '.',
  ],
  () => [
    'Performed at ',
    phi('LOCATION', hospital()),
    ', ',
    phi('LOCATION', `Ward ${faker.number.int({ min: 1, max: 12 })}${pick(['A', 'B', 'C'])}`),
    '.',
  ],
  () => [
    'Contact ',
    phi('CONTACT', faker.internet.email()),
    ' or visit ',
    phi('CONTACT', `www.${faker.internet.domainWord()}.com`),
    '.',
  ],
];

const HEADINGS = [
  { indication: 'INDICATION:', comparison: 'COMPARISON:', findings: 'FINDINGS:', impression: 'IMPRESSION:' },
  { indication: 'CLINICAL HISTORY:', comparison: 'COMPARISON:', findings: 'FINDINGS:', impression: 'IMPRESSION:' },
  { indication: 'Reason for exam:', comparison: 'Prior:', findings: 'Findings:', impression: 'Impression:' },
  { indication: 'HISTORY:', comparison: 'COMPARISONS:', findings: 'REPORT:', impression: 'CONCLUSION:' },
];

function sentence(pieces: Piece[], parts: string[], spans: GoldRecord['spans'], offset: { at: number }): void {
  for (const piece of pieces) {
    const value = typeof piece === 'string' ? piece : piece.value;
    if (typeof piece !== 'string')
      spans.push({ start: offset.at, end: offset.at + [...value].length, label: piece.label });
    parts.push(value);
    offset.at += [...value].length;
  }
}

function report(id: string): GoldRecord {
  const parts: string[] = [];
  const spans: GoldRecord['spans'] = [];
  const offset = { at: 0 };
  const add = (pieces: Piece[]) => sentence(pieces, parts, spans, offset);
  const clinical = (n: number) => faker.helpers.arrayElements(CLINICAL, n).join(' ');
  const h = pick(HEADINGS);
  add([`${h.indication} `, ...pick(HISTORY)(), '\n']);
  add([`${h.comparison} `, ...pick(COMPARISON)(), '\n']);
  const body: Piece[] = [clinical(faker.number.int({ min: 2, max: 4 }))];
  for (let i = faker.number.int({ min: 1, max: 2 }); i > 0; i--) body.push(' ', ...pick(IN_BODY)(), ' ', clinical(1));
  add([`${h.findings} `, ...body, '\n']);
  add([`${h.impression} `, clinical(faker.number.int({ min: 1, max: 2 })), '\n']);
  for (let i = faker.number.int({ min: 1, max: 3 }); i > 0; i--) add([...pick(FOOTER)(), '\n']);
  return { id, text: parts.join(''), spans };
}

/** `count` gold reports from `seed`: the same seed always gives the same reports. */
export function generateGold(seed: number, count: number): GoldRecord[] {
  faker.seed(seed);
  return Array.from({ length: count }, (_, i) => report(`synth-${seed}-${i}`));
}

if (require.main === module) {
  const { values } = parseArgs({
    options: {
      seed: { type: 'string', default: '1' },
      count: { type: 'string', default: '1000' },
      out: { type: 'string' },
    },
  });
  if (!values.out) throw new Error('--out FILE is required');
  const lines = generateGold(Number(values.seed), Number(values.count)).map((r) => JSON.stringify(r));
  writeFileSync(values.out, `${lines.join('\n')}\n`);
  console.log(`wrote ${lines.length} reports to ${values.out}`);
}
