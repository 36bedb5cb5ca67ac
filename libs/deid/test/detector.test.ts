import { RuleDetector, type PhiLabel } from '../src';

const detector = new RuleDetector();
const found = (text: string) => detector.find(text).map((s) => [s.label, text.slice(s.start, s.end)] as [PhiLabel, string]);

describe('RuleDetector', () => {
  it.each<[string, PhiLabel, string]>([
    ['Discussed with Dr. Smith by phone.', 'NAME', 'Smith'],
    ['Findings discussed with J. Doe, RN.', 'NAME', 'J. Doe'],
    ['Patient: SMITH, JOHN', 'NAME', 'SMITH, JOHN'],
    ['Smith, John was seen today.', 'NAME', 'Smith, John'],
    ['Dictated by: Maria Lopez, MD', 'NAME', 'Maria Lopez'],
    ['Dr. Brown agrees.', 'NAME', 'Brown'],
    ['Results called to JD at 10:30.', 'NAME', 'JD'],
    ['Compared with 03/04/2021.', 'DATE', '03/04/2021'],
    ['Prior from 2021-03-04 shows.', 'DATE', '2021-03-04'],
    ['Seen on 3/4 in clinic.', 'DATE', '3/4'],
    ['Fell on March 4th while walking.', 'DATE', 'March 4th'],
    ['Study of 4 Mar 2020 for comparison.', 'DATE', '4 Mar 2020'],
    ['Fever since the 4th, now cough.', 'DATE', '4th'],
    ['A 92-year-old woman with cough.', 'AGE', '92'],
    ['Aged 101, dyspnea.', 'AGE', '101'],
    ['Call (617) 555-1234 for questions.', 'CONTACT', '(617) 555-1234'],
    ['Reached at pager 45678.', 'CONTACT', '45678'],
    ['Email jane.doe@example.org today.', 'CONTACT', 'jane.doe@example.org'],
    ['See https://pacs.example.org/study/1 now.', 'CONTACT', 'https://pacs.example.org/study/1'],
    ['Sent from 10.1.2.3 workstation.', 'CONTACT', '10.1.2.3'],
    ['MRN: 12345678.', 'ID', '12345678'],
    ['Accession A1234567 is new.', 'ID', 'A1234567'],
    ['SSN 123-45-6789 on file.', 'ID', '123-45-6789'],
    ['Device serial number PJN123456 noted.', 'ID', 'PJN123456'],
    ['Transferred from St. Mary\'s Hospital today.', 'LOCATION', "St. Mary's Hospital"],
    ['Lives at 123 Main Street with family.', 'LOCATION', '123 Main Street'],
    ['Outside films from Boston, MA 02114 reviewed.', 'LOCATION', 'Boston'],
    ['Outside films from Boston, MA 02114 reviewed.', 'LOCATION', '02114'],
    ['Performed on Ward 7B.', 'LOCATION', 'Ward 7B'],
    ['Lives at Hammarvägen 15 with her son.', 'LOCATION', 'Hammarvägen 15'],
    ['A retired teacher from Framingham with cough.', 'LOCATION', 'Framingham'],
    ['Faxed to Brookside Family Practice today.', 'LOCATION', 'Brookside Family Practice'],
    ['Mail goes to Suite 210 now.', 'LOCATION', 'Suite 210'],
    ['Results given to Gladys at the desk.', 'NAME', 'Gladys'],
    ['Besprochen mit Dr. Müller.', 'NAME', 'Müller'],
  ])('finds %j as %s', (text, label, value) => {
    expect(found(text)).toContainEqual([label, value]);
  });

  it.each([
    'Swan-Ganz catheter tip in the right pulmonary artery.',
    'Kerley B lines and a Dobbhoff tube; Morgagni hernia; Chiari I malformation; Hodgkin lymphoma.',
    'Compression deformity of T12. Degenerative change at C5-6 and L1.',
    'Healing fracture of the left 7th rib; old 4th and 5th rib fractures.',
    'A 3.2 cm mass and a 10 mm nodule; opacity 2.5 x 1.8 cm.',
    'Endotracheal tube 4 cm above the carina; right IJ line; PICC; amiodarone and heparin.',
    'Study performed at 14:35. Compared to the prior study, no change. Stable since 2019.',
    'A 65-year-old man with cough. Grade 2 spondylolisthesis of L5 on S1.',
    'Heart size is normal. May represent atelectasis. Clear lungs.',
    'Jackson-Pratt drain and Sengstaken-Blakemore tube in place.',
  ])('leaves clinical text alone: %s', (text) => {
    expect(found(text)).toEqual([]);
  });

  it('does not take years alone or ages under 90', () => {
    expect(found('History of lung cancer diagnosed in 2019 in an 89-year-old.')).toEqual([]);
  });

  it('finds a name again wherever it recurs in the report', () => {
    expect(found('Discussed with Dr. Okonkwo. Okonkwo agreed.').filter(([l]) => l === 'NAME')).toEqual([
      ['NAME', 'Okonkwo'],
      ['NAME', 'Okonkwo'],
    ]);
  });

  it('keeps an identifier next to a measurement apart from the measurement', () => {
    expect(found('A 3.2 cm nodule (MRN 1234567).')).toEqual([['ID', '1234567']]);
  });

  // Names and places from outside the US and outside reports (the pii-synth misses): one sentence per rule.
  it.each<[string, PhiLabel, string]>([
    ['Our office moved to 4120 Koskikatu 18 last spring.', 'LOCATION', '4120 Koskikatu 18'],
    ['Parcels go to 27 Sørhauggata 9\nBergen\n5003 by Friday.', 'LOCATION', '27 Sørhauggata 9\nBergen\n5003'],
    ['She lives at Vesterbrogade 112, near the station.', 'LOCATION', 'Vesterbrogade 112'],
    ['The shop is at 14 rue de la Roquette in Paris.', 'LOCATION', '14 rue de la Roquette'],
    ['Send it to PSC 1234, Box 5678\nAPO AE 09012 please.', 'LOCATION', 'PSC 1234, Box 5678\nAPO AE 09012'],
    ['Deliver to Apt. 12\nSANTIAGO DE COMPOSTELA\n15705 tomorrow.', 'LOCATION', 'Apt. 12\nSANTIAGO DE COMPOSTELA\n15705'],
    ['The postal code is 53-320 for that street.', 'LOCATION', '53-320'],
    ['We met at the corner of Karl Johans Gate and Akersgata yesterday.', 'LOCATION', 'the corner of Karl Johans Gate and Akersgata'],
    ['Ingibjörg Sigurðardóttir will chair the meeting.', 'NAME', 'Ingibjörg Sigurðardóttir'],
    ['Yesterday Oksana called twice.', 'NAME', 'Oksana'],
    ['please ask mr. halvorsen to sign.', 'NAME', 'halvorsen'],
    ['They moved to Eindhoven last year.', 'LOCATION', 'Eindhoven'],
    ['They moved to Porto Alegre last year.', 'LOCATION', 'Porto Alegre'],
    ['Mailed from ΘΕΣΣΑΛΟΝΙΚΗ on Monday.', 'LOCATION', 'ΘΕΣΣΑΛΟΝΙΚΗ'],
    ['Fischer-Ortega sponsored the study.', 'LOCATION', 'Fischer-Ortega'],
    ['Parker, Lewis and Ramirez filed the claim.', 'LOCATION', 'Parker, Lewis and Ramirez'],
    ['She has worked for Quantexa since May.', 'LOCATION', 'Quantexa'],
    ['The report came from Northwind Technologies today.', 'LOCATION', 'Northwind Technologies'],
    ['Ayumi: Are you coming tonight?', 'NAME', 'Ayumi'],
    ['I thanked her and named him Frank after all.', 'NAME', 'Frank'],
    ['hi, my name is ingrid lindqvist and i lost my card', 'NAME', 'ingrid lindqvist'],
    ['we returned to eindhoven by train.', 'LOCATION', 'eindhoven'],
    ['send it to 48 kongensgade 12 please', 'LOCATION', '48 kongensgade 12'],
  ])('finds %j as %s', (text, label, value) => {
    expect(found(text)).toContainEqual([label, value]);
  });

  it.each([
    'Bosniak 2F cyst of the left kidney. Gleason 7 adenocarcinoma. Risser 4. Fazekas 2 white matter change.',
    'Hampton hump and Westermark sign; tetralogy of Fallot. Schatzker 2 tibial plateau fracture. Mallampati 3.',
    'Status post Whipple. Fontan circulation; prior Nissen and Roux-en-Y.',
    'Series 3 Image 45: nodule. Chest 2 views at 14:35. Since 2019 the effusion has decreased.',
    'Family from North Dakota and South Carolina; travel to Rhode Island.',
    'Chest 2 views. Lung-RADS 4A nodule; BI-RADS 3. Impella 5.5 device. Watchman 27 mm.',
    'Referred by a Russian clinic; Czech and Swedish speaking.',
    'BEFUND: Kein Pneumothorax. CONCLUSION: Pas d\'épanchement. Sans anomalie. Hallazgos: Sin neumotórax.',
  ])('leaves clinical text and state-level places alone: %s', (text) => {
    expect(found(text)).toEqual([]);
  });
});
