import { RuleDetector, type PhiLabel } from '../src';

const detector = new RuleDetector();
const found = (text: string) =>
  detector.find(text).map((s) => [s.label, text.slice(s.start, s.end)] as [PhiLabel, string]);

describe('RuleDetector', () => {
  it.each<[string, PhiLabel, string]>([
    ['Discussed with Dr. Smith by phone.', 'NAME', 'Smith'],
    ['Findings discussed with J. Doe, RN.', 'NAME', 'J. Doe'],
    ['Patient: SMITH, JOHN', 'NAME', 'SMITH, JOHN'],
    ['Smith, John was seen today.', 'NAME', 'Smith, John'],
    ['Dictated by: Maria Lopez, MD', 'NAME', 'Maria Lopez'],
    ['Dr. Brown agrees.', 'NAME', 'Brown'],
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
    ["Transferred from St. Mary's Hospital today.", 'LOCATION', "St. Mary's"],
    ['Lives at 123 Main Street with family.', 'LOCATION', '123 Main Street'],
    ['Outside films from Boston, MA 02114 reviewed.', 'LOCATION', 'Boston'],
    ['Outside films from Boston, MA 02114 reviewed.', 'LOCATION', '02114'],
    ['Performed on Ward 7B.', 'LOCATION', 'Ward 7B'],
    ['Lives at Hammarvägen 15 with her son.', 'LOCATION', 'Hammarvägen 15'],
    ['A retired teacher from Leominster with cough.', 'LOCATION', 'Leominster'],
    ['Faxed to Brookside Family Practice today.', 'LOCATION', 'Brookside Family Practice'],
    ['Mail goes to Suite 210 now.', 'LOCATION', 'Suite 210'],
    ['Results given to Gladys at the desk.', 'NAME', 'Gladys'],
    ['Besprochen mit Dr. Müller.', 'NAME', 'Müller'],
    ["Dr. O'Brien notified, no new orders.", 'NAME', "O'Brien"],
    ['Rabbi Levin came to pray with the family.', 'NAME', 'Levin'],
    ['wife "martha" at bedside overnight.', 'NAME', 'martha'],
    ['visited by significant other dorothy today.', 'NAME', 'dorothy'],
    ["Hx: colon CA'97, GERD.", 'DATE', "'97"],
    ['Cultures sent x2 3/14, afebrile since.', 'DATE', '3/14'],
    ['transferred from university of vermont hospital', 'LOCATION', 'university of vermont'],
    ['SEEN AT U OF VT MED CENTER IN MAY.', 'LOCATION', 'U OF VT'],
    ['FAMILY MEETING: MARTA KOWALCZYK (NIECE) SPEAKS FOR PT.', 'NAME', 'MARTA KOWALCZYK'],
    ['plan reviewed with Tom Reilly (resident) at rounds.', 'NAME', 'Tom Reilly'],
    ['left message, unable to reach Gloria until evening.', 'NAME', 'Gloria'],
    ['awaiting bed on brennick campus, remains in micu.', 'LOCATION', 'brennick'],
    ['FOLLOWED AT TOWSON VA FOR COPD.', 'LOCATION', 'TOWSON'],
    ['stable, c/o to farrowdale when bed ready.', 'LOCATION', 'farrowdale'],
    ['nadia ferreira is a 68 yo woman admitted with sob.', 'NAME', 'nadia ferreira'],
    ['Hx: old MI 2011, stent placed.', 'DATE', '2011'],
    ['BOLUS GIVEN PER DR.HALVORSEN, RATE CONTROLLED.', 'NAME', 'HALVORSEN'],
    ['pt resting comfortably.\n\nmarta k. oyelaran bsn/rn\n', 'NAME', 'marta k. oyelaran'],
    ['ADMITTED FROM ST JOSEPH HOSPITAL LAST WEEK.', 'LOCATION', 'ST JOSEPH'],
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
    'Study performed at 14:35. Compared to the prior study, no change. Stable over 2 years.',
    'A 65-year-old man with cough. Grade 2 spondylolisthesis of L5 on S1.',
    'Heart size is normal. May represent atelectasis. Clear lungs.',
    'Jackson-Pratt drain and Sengstaken-Blakemore tube in place.',
    'GIVEN 10 U OF REGULAR INSULIN FOR BS 300.',
    'Transferred to the main campus; seen at VA clinic. Tolerating PO (per RN).',
    'This is a 70 yo man. Pt is a 55 year old. Heparin given at 2010, ~2020 and @ 1950; 2000cc out; labs at 1930.',
  ])('leaves clinical text alone: %s', (text) => {
    expect(found(text)).toEqual([]);
  });

  it('takes a year of the patient history (as the PhysioNet gold does) but not ages under 90 or times of day', () => {
    expect(found('History of lung cancer diagnosed in 2019 in an 89-year-old; next dose at 2000.')).toEqual([
      ['DATE', '2019'],
    ]);
  });

  it('stops a name after a title at what the doctor did', () => {
    expect(found('DR VOLKER NOTIFED OF BP. DR. HOLMES CALLED-PT MEDICATED.')).toEqual([
      ['NAME', 'VOLKER'],
      ['NAME', 'HOLMES'],
    ]);
    expect(found('Paged DR JOHN KOZICKI at 2200.')).toContainEqual(['NAME', 'JOHN KOZICKI']);
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

  // Nursing-note shapes: names after titles and relatives in any case, signatures, phone and pager numbers, short dates.
  it.each<[string, PhiLabel, string]>([
    ['DR SMITH AWARE OF LABS.', 'NAME', 'SMITH'],
    ['dr. smith notified, no new orders.', 'NAME', 'smith'],
    ['Pt of dr. john bowman, seen today.', 'NAME', 'john bowman'],
    ['Discussed with Ann Fisher at the bedside.', 'NAME', 'Ann Fisher'],
    ['INDICATION: Cough. Patient John Smith, MRN 12345678.', 'NAME', 'John Smith'],
    ['Patient Will Rogers was seen.', 'NAME', 'Will Rogers'],
    ['Plan reviewed; wife Mary Fisher called twice.', 'NAME', 'Mary Fisher'],
    ["PMH: CAD, HTN, CABG x3 '87, GERD.", 'DATE', "'87"],
    ['PMH: s/p lobectomy 1991, COPD.', 'DATE', '1991'],
    ['INR 6.0 THIS AM. E. HARTLEY AWARE.', 'NAME', 'E. HARTLEY'],
    ['Diuresis held per d pruitt, lytes pending.', 'NAME', 'd pruitt'],
    ['Fluid bolus given; HO Brandt notified.', 'NAME', 'Brandt'],
    ['soc: daughter peggy staying overnight.', 'NAME', 'peggy'],
    ['PT TRANSFERRED TO BMH FOR CATH.', 'LOCATION', 'BMH'],
    ['plan: transfer to westbrook 4 today', 'LOCATION', 'westbrook'],
    ['Son flying in from Tallinn tomorrow.', 'LOCATION', 'Tallinn'],
    ['Dr. Glenn Hunt aware of the pressures.', 'NAME', 'Glenn Hunt'],
    ['SOCIAL: SPOKE WITH DAUGHTER DOLORES ON PHONE.', 'NAME', 'DOLORES'],
    ['Rested overnight.\n JOANNA K. WIELICZKO, RRT', 'NAME', 'JOANNA K. WIELICZKO'],
    ['Family may be reached at 617/555/0123 tonight.', 'CONTACT', '617/555/0123'],
    ['dtr - 617- 555- 0199.', 'CONTACT', '617- 555- 0199'],
    ['CELL-617 555-0142 & HOME-617 555-0187.', 'CONTACT', '617 555-0142'],
    ['Will follow. Pager #54321', 'CONTACT', '54321'],
    ['PMH: CABG 1/78, breast CA (12/93).', 'DATE', '1/78'],
    ['birthday is tomorrow, may 16, 2015.', 'DATE', 'may 16, 2015'],
    ['Transferred to the floor.9/3 readmitted.', 'DATE', '9/3'],
    ['Admitted from Lakeview Memorial Hospital with chest pain.', 'LOCATION', 'Lakeview Memorial'],
    ['TRANSFERRED FROM HOLBROOK MEMORIAL FOR CATH.', 'LOCATION', 'HOLBROOK MEMORIAL'],
    // The institution's type words identify no one and stay: only its name is redacted.
    ['Came over from Kessler Medical Center today.', 'LOCATION', 'Kessler'],
    ['FOUND DOWN IN ST ANNE HOSPITAL, TRANSFERRED.', 'LOCATION', 'ST ANNE'],
    // In capitals an English word names an institution after "at", "from", "to", "in".
    ['FAMILY SAYS AT GARDEN MEMORIAL SHE HAD A RASH.', 'LOCATION', 'GARDEN MEMORIAL'],
    ['First seen at U Vermont ER for chest pain.', 'LOCATION', 'U Vermont'],
    ['Grew up in Pittsburgh, retired here.', 'LOCATION', 'Pittsburgh'],
    ['sister and brother, Paula Greene, visited.', 'NAME', 'Paula Greene'],
    ['his sons tom and wendell visited.', 'NAME', 'wendell'],
    ['Brought to Memorial Hospital by ambulance.', 'LOCATION', 'Memorial'],
    ["last drink in june 19' per wife", 'DATE', "june 19'"],
    ['Reach the family at 617555-0142.', 'ID', '617555-0142'],
    // A bare "rehab" after a census name or a city names one.
    ['ACCEPTED AT LANGSTON REHAB FOR MONDAY.', 'LOCATION', 'LANGSTON'],
    ['hopes to go to Denver rehab next week', 'LOCATION', 'Denver'],
    // A preposition ends an institution's name: both are found.
    ['SCREENED AT DENVER REHAB OR LANGSTON REHAB.', 'LOCATION', 'DENVER'],
    ['SCREENED AT DENVER REHAB OR LANGSTON REHAB.', 'LOCATION', 'LANGSTON'],
    // A major city after "from", "in", "near" in capitals or lower case.
    ['SON FLEW IN FROM SEATTLE LAST NIGHT.', 'LOCATION', 'SEATTLE'],
    ['daughter (from seattle) called', 'LOCATION', 'seattle'],
    // A title joined to the word by its dot: a name even where the word is English too.
    ['500CC LR PER DR.GATEMAN. LOPRESSOR GIVEN.', 'NAME', 'GATEMAN'],
    // A home named by its owner, and hospitals named for a devotion, in any case.
    ['says he is "at seymour black\'s house."', 'LOCATION', 'seymour black'],
    ['WENT TO HOLY CROSS WITH FEVER.', 'LOCATION', 'HOLY CROSS'],
    ['transferred from sacred heart hosp today', 'LOCATION', 'sacred heart'],
    // A town of two words where someone lives, when one of them is no word or a town.
    ['social: lives alone in white amrsh, daughter close by', 'LOCATION', 'white amrsh'],
    ['son lives in glen burnie.', 'LOCATION', 'glen burnie'],
    // An employer named by a word and its kind.
    ['family in. he works for vista health.', 'LOCATION', 'vista health'],
  ])('finds %j as %s', (text, label, value) => {
    expect(found(text)).toContainEqual([label, value]);
  });

  it.each([
    'NEURO: alert. RESP: CPAP 5/5, 40%. CV: HR 70-80s. GI/GU: foley. ID: T 101.2, vanco.',
    'Neuro: MAE. Resp: PSV 10/5 with TV 400s. Endo: RISS. Social: family in.',
    'IVF D5 1/2 NS at 100cc/hr; 1/4 NS. Crackles 1/2 way up. Given 1 1/2 amps.',
    'Strength 5/5 in all extremities; blood cx 2/4 bottles positive. Pain 8/10, now 3/10.',
    'SIMV 700x12, 50%, 5/5. Dose 500x12. MAPS 70-80s, RR 20-30s, output 20-30cc/hr.',
    'PT REMAINS SEDATED. GIVEN LASIX. SEE FLOWSHEET FOR DETAILS. NEO GTT OFF. OOB TO CHAIR.',
    'Vanco and Amio given; Trach care; NPO; to MICU then CCU.',
    'Transferred to stepdown; then transferred to tele. Sent to BB for type and cross; weaned from RA to 2L. Admitted to NSICU.',
    'Placed a line in the l ij; a creatinine of 2; son will call tonight; MD aware of labs.',
    "Height 5'10\", 6' tall; next dose at 1900; turned at 2000; CVP 12.",
    'Hunt and Hess grade 3; Fisher grade 2; Glenn procedure in childhood; Ann Arbor stage II.',
    // What comes before a credential is often no name: a drug given, a role, a time.
    'LASIX GIVEN, RN TO RECHECK K. Wound RN saw the site; Ostomy RN changed the pouch; day rn to follow.',
    'PLAN TO BE SET DURING ROUNDS SO RN CAN CALL. DRIP OFF MD AWARE. WILL KEEP NP INFORMED.',
    'CT DRAINING MIN SEROSANG. U/O MIN.',
    'Cont rehab. CONT CARDIAC REHAB WITH PT- REHAB SCREEN. TO ACUTE REHAB; Pulmonary Rehab consult.',
    "DR.AWARE OF LABS. Stays at her daughter's house or at a friend's place.",
    'Lives in assisted living. Lives alone in an apartment; lives in nursing home, lives in group home.',
    'Works at a bank; works for the state; works for home health; works for the phone company.',
  ])('leaves nursing-note clinical text alone: %s', (text) => {
    expect(found(text)).toEqual([]);
  });

  it.each([
    'Bosniak 2F cyst of the left kidney. Gleason 7 adenocarcinoma. Risser 4. Fazekas 2 white matter change.',
    'Hampton hump and Westermark sign; tetralogy of Fallot. Schatzker 2 tibial plateau fracture. Mallampati 3.',
    'Status post Whipple. Fontan circulation; prior Nissen and Roux-en-Y.',
    'Series 3 Image 45: nodule. Chest 2 views at 14:35. Over 2 years the effusion has decreased.',
    'Family from North Dakota and South Carolina; travel to Rhode Island.',
    'Chest 2 views. Lung-RADS 4A nodule; BI-RADS 3. Impella 5.5 device. Watchman 27 mm.',
    'Referred by a Russian clinic; Czech and Swedish speaking.',
    "BEFUND: Kein Pneumothorax. CONCLUSION: Pas d'épanchement. Sans anomalie. Hallazgos: Sin neumotórax.",
  ])('leaves clinical text and state-level places alone: %s', (text) => {
    expect(found(text)).toEqual([]);
  });
});
