import {
  ACRONYMS,
  CLINICAL_UNITS,
  ENGLISH_WORDS,
  EPONYMS_NOT_NAMES,
  FIRST_NAMES,
  LAST_NAMES,
  MAJOR_CITIES,
  MEDICAL_TERMS,
  NATIONALITIES,
  NOT_LOCATIONS,
  NOT_NAMES,
  US_STATES,
  WORLD_CITIES,
  WORLD_NAMES,
} from './dictionaries';
import type { PhiLabel } from './types';

/**
 * One table of detection rules: a regular expression, the label of what it finds, the capture
 * group holding the identifier (its context words stay), and an optional check on the candidate.
 * A reader finds how phone numbers are found by searching this file for CONTACT.
 */
export interface Rule {
  name: string;
  label: PhiLabel;
  /** Global; with the `d` flag when `group` is set. */
  pattern: RegExp;
  /** Capture group (number or name) that is the identifier; the whole match when absent. */
  group?: number | string;
  /** What every match contains (a string, or a cheap pattern): the rule is skipped for texts without it. */
  requires?: string | RegExp;
  /** What no match's text contains: the rule is skipped for texts with it ("no capital letter anywhere"). */
  unless?: string | RegExp;
  /** Keeps the candidate when true, or with another label when it returns one; gets the identifier text and the whole match. */
  accept?: (value: string, match: RegExpExecArray, text: string) => boolean | PhiLabel;
  /** When the check refuses a match, look again from its next word: a shorter match inside may pass ("FROM HOLBROOK MEMORIAL"). */
  retryInside?: boolean;
  /** Words ending an accepted identifier that only say what kind of thing it is ("Hospital"): they stay in the text. */
  kindAtEnd?: RegExp;
}

/** `(?:a|b|c)`: alternatives in order (in a regular expression the first that matches wins). */
const anyOf = (...sources: string[]) => `(?:${sources.join('|')})`;
/** `(?:a|b|c)` from words or short patterns written one after another, one space apart: long lists stay legible. */
const words = (list: string) => anyOf(...list.trim().split(/\s+/));

const MONTH =
  '(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sept?(?:ember)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)';
const WEEKDAY = '(?:(?:Mon|Tues?|Wed(?:nes)?|Thu(?:rs)?|Fri|Sat(?:ur)?|Sun)(?:day)?\\.?,?\\s+)';
const ORDINAL = '(?:st|nd|rd|th)';
/** Words after an ordinal that make it anatomy or a count, not a day: "7th rib", "5th decade". */
const ANATOMY_OR_COUNT = words(`
  ribs? posterior anterior lateral intercostal interspaces? space costal costochondral thoracic cervical lumbar
  sacral vertebra[el]? vertebral metacarpal metatarsal digit finger toe ventricle percentile decade generation
  grade degree time day week month year hour dose cycle fraction line order division branch segment level
`);
const NOT_A_DAY = `(?:\\s*(?:and|or|-|to|through)\\s*\\d{1,2}(?:st|nd|rd|th)?)?\\s*${ANATOMY_OR_COUNT}`;

/** USPS street suffixes (Publication 28, appendix C1), full and abbreviated. */
const STREET_SUFFIX = words(`
  Alley Aly Annex Arcade Avenue Ave Bayou Beach Bend Bluffs? Boulevard Blvd Branch Bridge Brooks? Bypass Camp
  Canyon Cape Causeway Centers? Circles? Cir Cliffs? Club Commons? Corners? Course Courts? Ct Coves? Creek
  Crescent Crest Crossing Crossroads? Curve Dale Dam Divide Drives? Dr Estates? Expressway Expy Extensions?
  Falls? Ferry Fields? Flats? Fords? Forest Forges? Forks? Fort Freeway Fwy Gardens? Gateway Glens? Greens?
  Groves? Harbors? Haven Heights Hts Highway Hwy Hills? Hollow Inlet Islands? Isle Junctions? Keys? Knolls?
  Lakes? Land Landing Lane Ln Lights? Loaf Locks? Lodge Loop Mall Manors? Meadows? Mews Mills? Mission Motorway
  Mount Mountains? Neck Orchard Oval Overpass Parks? Parkways? Pkwy Pass Passage Path Pike Pines? Places? Pl
  Plains? Plaza Plz Points? Ports? Prairie Radial Ramp Ranch Rapids? Rest Ridges? River Roads? Rd Route Row Rue
  Run Shoals? Shores? Skyway Springs? Spurs? Squares? Sq Station Stravenue Streams? Streets? St Summit Terrace
  Ter Throughway Trace Track Trafficway Trail Trl Trailer Tunnel Turnpike Tpke Underpass Unions? Valleys?
  Viaduct Views? Villages? Ville Vista Walks? Wall Ways? Wells?
`);
const STATE_ABBR = Object.keys(US_STATES).join('|');
const STATE_NAME = Object.values(US_STATES).join('|');
const MEASUREMENT_UNIT = /^\s*(?:mm|cm|m|km|ml|mL|cc|l|g|mg|mcg|kg|%|x|inch|inches|ft|degrees?|mmHg|hu|HU)\b/;

/** A regex source that matches its letters in either case, for context words next to case-sensitive names. */
function anyCase(source: string): string {
  return source.replace(/\\.|\[[^\]]*\]|[a-zA-Z]/g, (t) =>
    t.length === 1 ? `[${t.toLowerCase()}${t.toUpperCase()}]` : t,
  );
}

function lower(words: string | string[]): Set<string> {
  return new Set((typeof words === 'string' ? words.trim().split(/\s+/) : words).map((w) => w.toLowerCase()));
}

const m = (source: string, flags = 'g') => new RegExp(source, flags);
/** Rules whose every match holds a digit share this requirement (tested once per text). */
const DIGIT = /\d/;
const digitCount = (value: string) => value.replace(/\D/g, '').length;
const validMonthDay = (month: number, day: number) => month >= 1 && month <= 12 && day >= 1 && day <= 31;
const after = (match: RegExpExecArray, text: string, length = 40) =>
  text.slice(match.index + match[0].length, match.index + match[0].length + length);
const before = (match: RegExpExecArray, text: string, length = 30) =>
  text.slice(Math.max(0, match.index - length), match.index);
const followedBy = (match: RegExpExecArray, text: string, pattern: RegExp) => pattern.test(after(match, text));

// ------------------------------------------------------------------ dates in nursing notes
/**
 * What makes "5/5", "1/2", "10/5" a fraction, a score or a ventilator setting rather than a
 * month/day: the words before it (pressure support, PEEP, pain scales, "D5 1/2 NS"), and the
 * words after it (a unit, normal saline, "way up", "strength", a percentage of oxygen).
 */
const SETTING_BEFORE =
  /(?:\b(?:c?pap|bi-?pap|[ie]pap|psv?|peep|simv|imv|vent(?:ilat\w*)?|flow-?by|settings?|trial(?:ed)?\s+on|wean\w*(?:\s+\w+)?\s+to|d\s?5|d5w|ivf|rales|strength|perrla|cx|cultures?)|%,?\s*&?)[\s:,#=@-]*$/i;
const PAIN_BEFORE = /\b(?:pain|cp|discomfort|rat(?:ing|ed|es)|scale|h\/?a|headache)\b[^.\n]{0,20}$|#\s*$/i;
const NOT_DATE_AFTER =
  /^(?:\s*(?:%|n\.?s\b|ns\b|amps?\b|strength|st\b|way\b|up\b|of\b|doses?\b|hrs?\b|hours?\b|bottles?\b|bl\b|blood|u\b|units?\b|liters?\b|l\b|peep|psv?\b|nph\b|cp\b|pain|[-/]?\s*\.\d|,?\s*\d{2,3}\s*%)|\s*[/x]\d)/i;
/** Words before a number that make it a time of day or a count ("at 2000", "@ 1930", "x 2000"), not a year. */
const TIME_CUE_BEFORE =
  /(?:\b(?:at|around|about|by|until|till|from|to|x|w\/?|after|before|since|q|approx(?:imately)?)|[@~=>])\s*$/i;
/** Words before a date that name it as one, for shapes that are usually fractions ("on 3/4", "since 1/2"). */
const DATE_CUE_BEFORE =
  /\b(?:on|since|from|until|till|thru|through|dated?|d\/c'?d?|s\/p|admit(?:ted)?|adm|last|due|f\/u|of|arriv(?:e|es|ed|ing)|scheduled|expected)\s*$|^\s*$|\n[ \t]*$/i;

/** A month/day pair in a note: a valid date whose shape and surroundings are not those of a fraction, score or setting. */
function noteMonthDay(month: number, day: number, match: RegExpExecArray, text: string): boolean {
  if (!validMonthDay(month, day)) return false;
  const prefix = before(match, text);
  if (SETTING_BEFORE.test(prefix) || followedBy(match, text, NOT_DATE_AFTER)) return false;
  if (day === 10 && (PAIN_BEFORE.test(prefix) || followedBy(match, text, /^\s*\)?\s*(?:cp|pain|chest)/i))) return false;
  // 1/2, 2/3, 3/4 and 5/5, 2/2: fractions and strength or culture counts unless a date cue precedes them.
  const fractionShape = month < day && day <= 4;
  if ((fractionShape || month === day) && !DATE_CUE_BEFORE.test(prefix)) return false;
  return true;
}
const validYear = (year: string) => year.length === 2 || /^(?:19|20)\d\d$/.test(year);

// ------------------------------------------------------------------ names
const TITLE = '(?:Dr|Drs|Doctor|Mr|Mrs|Ms|Miss|Mx|Prof|Professor|Rabbi|Rev|Reverend|Pastor|Chaplain)';
/**
 * A title as nurses write it, in any case ("Dr.", "DR", "dr"); "MS" and "ms" only with a dot, as
 * bare they are mental status and morphine sulphate ("MS back to baseline", "ms given").
 */
const TITLE_WORD = m(`^${TITLE}\\.?$`, 'i');
const TITLE_ANY_CASE = `(?:${anyCase('(?:Dr|Drs|Doctor|Mr|Mrs|Miss|Prof|Rabbi|Rev|Reverend|Pastor|Chaplain)')}|Ms|MS\\.|ms\\.)`;
/** Between a title and the name: a dot with or without a space ("Dr. Smith", "DR.SMITH"), else a space ("Dr' Smith"). */
const AFTER_TITLE = "(?:\\.[ \\t]*|['’]?[ \\t]+)";
/** A name token in any case: "Smith", "SMITH", "smith", "O'Connell", "Retterer-moore". */
const NAME_LETTER = 'A-Za-zÀ-ÖØ-öø-ÿ';
const NAME_TOKEN = `[${NAME_LETTER}][${NAME_LETTER}'’]*(?:-[${NAME_LETTER}][${NAME_LETTER}'’]*)?[${NAME_LETTER}]`;
const INITIAL = '[A-Za-z]\\.?';
const CREDENTIALS = '(?:MD|M\\.D\\.|RN|NP|PA-C|PhD|RRT|CRNA|DNP|LICSW|MSW|BSN|MSN|LPN|rrt|rn|md|np|bsn|msn|lpn)';
const CREDENTIAL_WORD = /^(?:md|rn|np|rrt|crna|dnp|phd|licsw|msw|bsn|msn|lpn|pa|pt|ot|rt|do|ho|iv)$/i;
/** Who is named next to a patient in nursing notes: relatives, friends, carers and staff roles. */
const PERSON_CUE = anyCase(
  `${words(`
  son daughter dtr wife husband spouse mother father mom dad brother sister sis bro girlfriend boyfriend
  significant\\s+other partner fianc[eé]e? friend caregiver niece nephew aunt uncle cousin
  grand(?:son|daughter|mother|father|child) (?:son|daughter|mother|father|brother|sister)-in-law neighbou?r
  proxy hcp guardian nurse resident intern attending fellow ho np md
`)}s?`,
);
/** Who a nurse talked to or was told by: the name follows. */
const TALK_CUE = anyCase(
  words(`
  discussed\\s+with d/w spoke\\s+(?:with|to) talked\\s+(?:with|to) met\\s+with seen\\s+by paged signed\\s+by
  dictated\\s+by per called reach(?:ed)? contact(?:ed)?
`),
);
/** Nouns that make a capitalised word an eponym: "Kerley B lines", "Fisher grade 3", "Hunt and Hess", "Glenn procedure". */
const EPONYM_NOUN = m(
  `^[\\s-]*(?:(?:and|&)\\s+[A-Z][a-z]+\\s+)?(?:[A-Z]\\s+)?${words(`
    lines? fracture sign tube catheter hernia disease lymphoma syndrome malformation classification type lesion
    nodes? view projection position maneuver drain stent filter valve device pouch procedure operation anomaly
    deformity diverticulum ring grade score scale stage staging criteria shunt circulation anastomosis repair
    fundoplication test sheath port reflex phenomenon law equation formula
  `)}\\b`,
  'i',
);

const key = (w: string) =>
  w
    .toLowerCase()
    .replace(/['’]s$/, '')
    .replace(/[.]+$/, '');
const isCaps = (w: string) => /^[A-Z'’-]+$/.test(w) && /[A-Z]{2}/.test(w);
const MONTH_WORDS = lower(`
  jan feb mar apr jun jul aug sep sept oct nov dec january february march april may june july august september
  october november december monday tuesday wednesday thursday friday saturday sunday
`);
/** A word that never starts a name in a note: function words, headings, ward abbreviations, months. */
const stopWord = (w: string) =>
  CREDENTIAL_WORD.test(w) ||
  TITLE_WORD.test(w) ||
  ACRONYMS.has(w) ||
  CLINICAL_UNITS.has(w.toUpperCase()) ||
  NOT_NAMES.has(key(w)) ||
  MONTH_WORDS.has(key(w)) ||
  /^(?:and|or|of|on|at|in|to|the|a|an|is|was|for|with|by|from|per|near)$/i.test(w);
const PERSON_CUE_WORD = m(`^${PERSON_CUE}$`, '');
/** A word that never is part of a name: a stop word (titles, credentials, function words, months, ward abbreviations) or a relative or role ("son", "nurse"). */
export const neverNamePart = (w: string) => stopWord(w) || PERSON_CUE_WORD.test(w);
/** A census given name or surname; the census writes "O'Brien" as "obrien". */
const censusName = (k: string) =>
  FIRST_NAMES.has(k) || LAST_NAMES.has(k) || (/['’]/.test(k) && LAST_NAMES.has(k.replace(/['’]/g, '')));
/** A clinical word (the medical lexicon, English) that is not also a census name: "Lasix", "aware", "Neo". */
const clinicalWord = (k: string) => (MEDICAL_TERMS.has(k) || ENGLISH_WORDS.has(k)) && !censusName(k);

/**
 * A token after a strong cue (a title, "daughter"): a census name, or a word no lexicon knows
 * ("Lomish"). In capitals, a census name that is an English word too ("WILL", "MAY", "ROB") is
 * not taken: capitals lose the case cue that tells the name from the word.
 */
function nameAfterCue(w: string, strong: boolean): boolean {
  const k = key(w);
  if (k.length < 2 || stopWord(w) || EPONYMS_NOT_NAMES.has(k) || NATIONALITIES.has(k)) return false;
  const capitalised = /^\p{Lu}\p{Ll}/u.test(w);
  // After a title a capitalised word is a name whatever the lexicons say ("Dr. Müller", "Dr. Brown").
  if (strong && capitalised) return true;
  // Capitals and lower case lose the case cue: there a census name must be no English word ("WILL", "line", "given"),
  // except after a title ("DR SMITH", "dr. green"), where only verbs that follow one are refused ("DR WILL SEE").
  // After a relative or a role ("daughter peggy", "wife, rose"), a census given name counts too, verbs aside ("son will call").
  if (
    !capitalised &&
    ENGLISH_WORDS.has(k) &&
    !((strong ? censusName(k) : FIRST_NAMES.has(k)) && !VERBS_AFTER_TITLE.has(k))
  )
    return false;
  if (censusName(k)) return true;
  // A word no lexicon knows ("Lomish", "sats", "htn") is a name only after a title or capitalised.
  return (strong || capitalised) && !MEDICAL_TERMS.has(k) && !ENGLISH_WORDS.has(k);
}

const VERBS_AFTER_TITLE = lower(
  'will may can called call see saw said says aware here in at to and or notified paged ordered',
);

/** A following token joins a name only when it is one too and written in the same case ("Dr. Rakusin aware" stops at the name). */
function sameCase(a: string, b: string): boolean {
  const shape = (w: string) => (isCaps(w) ? 'caps' : /^[a-z]/.test(w) ? 'lower' : 'capitalised');
  return shape(a) === shape(b) || w1IsInitial(a) || w1IsInitial(b);
}
const w1IsInitial = (w: string) => /^[A-Za-z]\.?$/.test(w);

/** Every word of a name found after a cue is a name, the last not followed by an eponym noun. */
function nameSequence(value: string, match: RegExpExecArray, text: string, strong = true): boolean {
  const tokens = value.split(/[\s,]+/).filter((t) => !w1IsInitial(t));
  if (tokens.length === 0 || !tokens.every((t) => nameAfterCue(t, strong))) return false;
  if (!tokens.every((t) => sameCase(tokens[0]!, t))) return false;
  return !followedBy(match, text, EPONYM_NOUN);
}

/**
 * The word after a surname that follows a title is often what the doctor did ("DR LAVELY NOTIFED", "DR. HOLMES
 * CALLED"): after a given name it may be any surname ("DR JOHN KOZICKI"), else it must be a census name of 3+ letters.
 */
function secondNameAfterTitle(value: string): boolean {
  const [first, ...rest] = value.split(/[\s,]+/).filter((t) => !w1IsInitial(t));
  if (rest.length === 0 || FIRST_NAMES.has(key(first!))) return true;
  return rest.every((t) => t.length > 2 && nameAfterCue(t, false) && (censusName(key(t)) || /^\p{Lu}\p{Ll}/u.test(t)));
}

/**
 * A name before a credential ("KOZICKI, RRT", "Ann Fisher RN"), a cue weaker than a title: the word before "RN" is
 * often a verb or a role ("LASIX GIVEN, RN", "Ostomy RN", "by day rn"). A word of the lexicons (or of two letters)
 * counts only as a given name, or as a census surname after a given name or an initial.
 */
function credentialName(value: string, match: RegExpExecArray, text: string): boolean {
  const tokens = value.split(/[\s,]+/);
  const known = (k: string) => k.length <= 2 || ENGLISH_WORDS.has(k) || MEDICAL_TERMS.has(k);
  return (
    nameSequence(value, match, text) &&
    tokens.every((t, i) => {
      const k = key(t);
      if (w1IsInitial(t) || !known(k)) return true;
      if (FIRST_NAMES.has(k) && k.length > 2 && !VERBS_AFTER_TITLE.has(k)) return true;
      const previous = tokens[i - 1];
      return previous !== undefined && LAST_NAMES.has(k) && (w1IsInitial(previous) || FIRST_NAMES.has(key(previous)));
    })
  );
}

/** A name without a cue: a census given name and a surname, capitalised, neither a clinical word nor followed by an eponym noun. */
function dictionaryName(
  first: string,
  last: string,
  match: RegExpExecArray,
  text: string,
  wordsAllowed = false,
): boolean {
  const f = key(first);
  const l = key(last);
  if (!FIRST_NAMES.has(f) || (!wordsAllowed && (ENGLISH_WORDS.has(f) || MEDICAL_TERMS.has(f)))) return false;
  if (
    stopWord(first) ||
    stopWord(last) ||
    EPONYMS_NOT_NAMES.has(f) ||
    EPONYMS_NOT_NAMES.has(l) ||
    NOT_LOCATIONS.has(f) ||
    NOT_LOCATIONS.has(l) ||
    US_STATES[first] ||
    US_STATES[last]
  )
    return false;
  if (followedBy(match, text, EPONYM_NOUN)) return false;
  // A surname outside the census lists must at least not be a word ("Helen Clear"); in capitals, where unknown words
  // are mostly abbreviations and misspellings ("MIN SEROSANG"), it must be a census surname.
  if (!LAST_NAMES.has(l)) return !isCaps(last) && !clinicalWord(l) && !MEDICAL_TERMS.has(l);
  return !(isCaps(last) && ENGLISH_WORDS.has(l));
}

/** A census given name alone, capitalised mid-sentence ("once Natalie woke"), when no word, eponym or place. */
function givenNameAlone(value: string, match: RegExpExecArray, text: string): boolean {
  const k = value.toLowerCase();
  if (!FIRST_NAMES.has(k)) return false;
  if (/(?:North|South|West|New)\s$/.test(before(match, text, 6))) return false;
  return (
    !ENGLISH_WORDS.has(k) &&
    !MEDICAL_TERMS.has(k) &&
    !stopWord(value) &&
    !EPONYMS_NOT_NAMES.has(k) &&
    !NOT_LOCATIONS.has(k) &&
    !US_STATES[value] &&
    !followedBy(match, text, EPONYM_NOUN)
  );
}

/** Two capitalised words, neither a word of any lexicon, one a given name or surname of the world lists ("Radu Ballou"). */
function worldNamePair(first: string, last: string, match: RegExpExecArray, text: string): boolean {
  const unknown = (w: string) =>
    !clinicalWord(key(w)) &&
    !MEDICAL_TERMS.has(key(w)) &&
    !stopWord(w) &&
    !EPONYMS_NOT_NAMES.has(key(w)) &&
    !NATIONALITIES.has(key(w)) &&
    !NOT_LOCATIONS.has(key(w)) &&
    !MONTH_WORDS.has(key(w));
  const known = (w: string) => WORLD_NAMES.has(key(w)) || censusName(key(w));
  return unknown(first) && unknown(last) && (known(first) || known(last)) && !followedBy(match, text, EPONYM_NOUN);
}

/** What follows a clinician's name in a note: told, acting, or a credential. The initial before it is no article ("a line") nor a side ("l ij"). */
const STAFF_FOLLOWER = 'aware|notified|made\\s+aware|ordered|paged|called|in\\s+to|placing|pa|np|md|rn|ho';

/** The surname after an initial: a census surname, or a word no lexicon knows, never a clinical word or a unit. */
function initialSurname(last: string): boolean {
  const k = key(last);
  if (k.length < 2 || stopWord(last) || CLINICAL_UNITS.has(last.toUpperCase()) || EPONYMS_NOT_NAMES.has(k))
    return false;
  return LAST_NAMES.has(k) || (!ENGLISH_WORDS.has(k) && !MEDICAL_TERMS.has(k));
}

/** Who a nurse talked to: capitalised, starting with a census name, no clinical word ("spoke with Ann Fisher"). */
function talkedToName(value: string, match: RegExpExecArray, text: string): boolean {
  return (
    /^[A-Z][a-z]/.test(value) &&
    value
      .split(/\s+/)
      .filter((t) => !w1IsInitial(t))
      .every((t) => censusName(key(t)) || (!clinicalWord(key(t)) && !MEDICAL_TERMS.has(key(t)))) &&
    censusName(key(value.split(/\s+/)[0]!)) &&
    nameSequence(value, match, text)
  );
}

// ------------------------------------------------------------------ places
/** Words that name a care institution after its name: "Harbor Hospital", "Frederick Memorial", "St Mary hospital". */
const INSTITUTION_TYPE = anyCase(
  words(`
  Hospital Hosp\\.? Medical\\s+Cent(?:er|re) Health\\s+(?:System|Center|Centre|Care) Healthcare Clinic Infirmary
  Memorial Nursing\\s+(?:Home|Facility) Rehab(?:ilitation)?(?:\\s+(?:Cent(?:er|re)|Hospital|Facility))? Hospice
  Family\\s+Practice Practice University College Cancer\\s+Cent(?:er|re) Heart\\s+Institute Institute
  Medical\\s+Group
`),
);
/** Words of a ward's or a unit's name that say what it is, not which one. */
const WARD_WORD = m(
  `^${words(`
    ward wing pavilion tower building bldg room rm bed intensive coronary neonatal surgical medical step down
    observation psychiatric oncology dialysis recovery maternity labor delivery burn isolation private single
    double general acute long short stay day night
  `)}$`,
  'i',
);
/** An institution's trailing type words, which identify no one ("Harbor [Hosp]", "Kessler [Medical Center]"); "Memorial" and "University" name it. */
const INSTITUTION_KIND_AT_END = m(
  `(?:\\s+${anyCase(
    words(`
  Hospital Hosp\\.? Med(?:ical|\\.)? Cent(?:er|re) Group Health\\s+(?:System|Center|Centre|Care) Healthcare Clinic Infirmary
  Nursing\\s+(?:Home|Facility) Facility Rehab(?:ilitation)? Hospice
`),
  )})+\\s*$`,
  '',
);
/** Leading words that alone do not name an institution ("Outside Hospital", "Community Hospital", "the VA Hospital"). */
const GENERIC_PLACE = lower(`
  the a an outside our this that local community general regional county state city university medical health
  care emergency children childrens women womens veterans va new old main north south east west central hospital
  clinic center centre radiology imaging and of for at in from to with by nursing rehabilitation rehab cancer
  heart cardiac surgical surgery pediatric trauma family primary urgent memorial department same another prior
  previous patient his her their st saint mount mt hosp home practice institute college facility
`);
/** Words that end an institution's name where they stand: "AT [BALTIMORE] REHAB OR [KESSLER] REHAB". */
const NOT_IN_INSTITUTION_NAME = `(?!${anyCase(words('or at to in from per near with by'))}\\b)`;
/** A word of an institution's type, no part of its name. */
const INSTITUTION_WORD = m(
  `^${words(`
    Hospital Hosp Medical Center Centre Health Memorial Clinic Practice Nursing Home Facility Rehab
    Rehabilitation Institute University College System Care Healthcare Infirmary Hospice Group
  `)}$`,
  'i',
);
/** An institution name: at least one word that is neither generic nor clinical ("Interventional Radiology" is not one). */
function institutionName(value: string, match?: RegExpExecArray, text?: string): boolean {
  const tokens = value.split(/[\s.,]+/).filter(Boolean);
  const head = tokens.slice(0, -1).filter((w) => !INSTITUTION_WORD.test(w));
  // In capitals an English word is no name part ("WOMAN TRANSFERRED FROM ... HOSPITAL"), unless the name follows "at",
  // "from", "to" or "in" ("AT UNION MEMORIAL"); capitalised it may be ("Harbor Hospital").
  const afterPlaceWord =
    match !== undefined && text !== undefined && /\b(?:at|from|to|in)\s+$/i.test(before(match, text, 6));
  // After "St" or "Mount" a census given name is one in any case ("ST JOSEPH HOSPITAL", "ST MARY HOSPITAL").
  const afterSaint = (i: number) => i > 0 && /^(?:st|saint|mt|mount)$/i.test(head[i - 1]!);
  const part = (w: string, i: number) =>
    GENERIC_PLACE.has(w.toLowerCase()) ||
    (afterSaint(i) && FIRST_NAMES.has(key(w))) ||
    (!stopWord(w) &&
      (/^[A-Z][a-z]/.test(w)
        ? !clinicalWord(key(w)) || !MEDICAL_TERMS.has(key(w))
        : (afterPlaceWord || !ENGLISH_WORDS.has(key(w))) && !clinicalWord(key(w))));
  // "Memorial Hospital" is a name by itself.
  if (head.length === 0) return tokens.length === 2 && /^memorial$/i.test(tokens[0]!);
  // Bare "rehab" follows clinical words as often ("cont rehab", "PT- rehab"): there the name must be a census name or a city.
  const known = (w: string) => censusName(key(w)) || WORLD_CITIES.has(w.toLowerCase());
  if (/^rehab$/i.test(tokens.at(-1)!) && !head.every((w) => GENERIC_PLACE.has(w.toLowerCase()) || known(w)))
    return false;
  return (
    !/^(?:of|and|the)$/i.test(head[0]!) &&
    !head.some((w) => /^(?:from|to|at|in|per|near|with|by)$/i.test(w)) &&
    head.every(part) &&
    !head.some((w) => NATIONALITIES.has(key(w))) &&
    head.some(
      (w) =>
        !GENERIC_PLACE.has(w.toLowerCase()) &&
        !stopWord(w) &&
        !(MEDICAL_TERMS.has(key(w)) && !censusName(key(w))) &&
        !CLINICAL_UNITS.has(w.toUpperCase()),
    )
  );
}
/** A city of 200,000 people or more that is no word, acronym or eponym, even where a medical lexicon lists it ("baltimore", after its eponyms). */
function majorCity(value: string): boolean {
  const k = key(value);
  return (
    MAJOR_CITIES.has(k) &&
    k.length >= 4 &&
    !ENGLISH_WORDS.has(k) &&
    !EPONYMS_NOT_NAMES.has(k) &&
    !NOT_LOCATIONS.has(k) &&
    !stopWord(value)
  );
}

/** A capitalised word after "from", "in", "lives in" that no lexicon knows, or a major city: a town ("from Pikesville", "in Baltimore"). */
function unknownPlace(value: string, match: RegExpExecArray, text: string): boolean {
  if (NOT_LOCATIONS.has(value.toLowerCase()) || followedBy(match, text, EPONYM_NOUN)) return false;
  if (majorCity(value)) return true;
  return value.split(/[\s-]+/).every((w) => {
    const k = key(w);
    return (
      !ENGLISH_WORDS.has(k) &&
      !MEDICAL_TERMS.has(k) &&
      !stopWord(w) &&
      !EPONYMS_NOT_NAMES.has(k) &&
      !FIRST_NAMES.has(k) &&
      !NOT_LOCATIONS.has(k) &&
      !NATIONALITIES.has(k) &&
      !CLINICAL_UNITS.has(w.toUpperCase()) &&
      !TITLE_WORD.test(w)
    );
  });
}

/** One word after a movement cue, in any case: a place when no lexicon holds it as a clinical or English word, or a town of the world lists. */
function placeAfterMovement(value: string): boolean {
  const k = key(value);
  // Any intensive-care unit, misspelt or not ("NISICU", "micua"), is a ward, not a place.
  if (
    value.length < 2 ||
    stopWord(value) ||
    NOT_LOCATIONS.has(k) ||
    CLINICAL_UNITS.has(value.toUpperCase()) ||
    /icu|ccu/i.test(value)
  )
    return false;
  if (WORLD_CITIES.has(k) && !ENGLISH_WORDS.has(k)) return true;
  return !ENGLISH_WORDS.has(k) && !MEDICAL_TERMS.has(k) && !ACRONYMS.has(value.toUpperCase());
}

// ------------------------------------------------------------------ identifiers and contacts
/** Words that label an identifier ("MRN: 1234567", "acct# ..."); "ID:" as a heading (infectious disease) needs 4 digits after it like any other. */
const ID_CUE = `(?:${[
  'MRN',
  'MR#',
  'medical\\s+record(?:\\s+(?:number|no\\.?|#))?',
  'record\\s+(?:number|no\\.?|#)',
  'unit\\s+(?:number|no\\.?)',
  'accession(?:\\s+(?:number|no\\.?|#))?',
  'acc(?:\\.|#|t\\.?)?',
  'account(?:\\s+(?:number|no\\.?|#))?',
  'health\\s+plan(?:\\s+(?:id|number|no\\.?|beneficiary\\s+number))?',
  'beneficiary(?:\\s+(?:id|number|no\\.?))?',
  'member(?:\\s+(?:id|number|no\\.?))?',
  'policy(?:\\s+(?:number|no\\.?|#))?',
  'insurance(?:\\s+(?:id|number|no\\.?))?',
  'subscriber(?:\\s+(?:id|number|no\\.?))?',
  'licen[cs]e(?:\\s+(?:plate|number|no\\.?|#))?',
  "driver'?s?\\s+licen[cs]e(?:\\s+(?:number|no\\.?|#))?",
  'serial(?:\\s+(?:number|no\\.?|#))?',
  'S\\/N',
  'device(?:\\s+(?:id|serial|number|no\\.?))',
  'lot(?:\\s+(?:number|no\\.?|#))?',
  'plate(?:\\s+(?:number|no\\.?|#))?',
  'VIN',
  'patient\\s+(?:id|number|no\\.?|#)',
  'pt\\s+(?:id|#|no\\.?)',
  'ID',
  'identifier',
  'case(?:\\s+(?:number|no\\.?|#))',
  'study\\s+(?:id|number|no\\.?|#)',
  'exam(?:ination)?\\s+(?:id|number|no\\.?|#)',
  'order(?:\\s+(?:number|no\\.?|#))',
  'requisition(?:\\s+(?:number|no\\.?|#))?',
  'NPI',
  'DEA',
  'certificate(?:\\s+(?:number|no\\.?|#))?',
  'badge(?:\\s+(?:number|no\\.?|#))?',
  'employee\\s+(?:id|number|no\\.?)',
  'passport(?:\\s+(?:number|no\\.?|#))?',
  'specimen(?:\\s+(?:id|number|no\\.?|#))?',
].join('|')})`;
/** A North American number: area code, exchange, line, with spaces, dots, dashes or slashes ("201/324/1423", "212- 476- 8356"). */
const PHONE_SEPARATOR = '(?:\\s*[./-]\\s*|\\s)';
const PHONE_US = `(?:\\+?1[\\s.-]?)?(?:\\(\\d{3}\\)\\s?|\\d{3}${PHONE_SEPARATOR})\\d{3}${PHONE_SEPARATOR}\\d{4}\\b`;
/** Words that put a number next to them as a phone or pager number. */
const PHONE_CUE = words(`
  phone ph tel telephone fax facsimile pager pgr pg beeper beep cell(?:ular)? mobile cellphone
  call(?:ed)?(?:\\s+(?:me|him|her|them|us))?\\s+(?:at|on) contact(?:ed)?\\s+(?:at|on)
  (?:be\\s+)?reach(?:ed)?\\s+(?:me\\s+)?(?:at|on) number(?:\\s+is)?
`);
/** Words before a town or an institution in a note: transfers, homes. */
const PLACE_CUE = words(`
  transferred\\s+(?:here\\s+)?(?:from|to) transfer\\s+(?:from|to) lives\\s+in living\\s+in resides\\s+in
  resident\\s+of moved\\s+(?:here\\s+)?from home\\s+in town\\s+of city\\s+of returned\\s+from visiting\\s+from
`);
/** Words before a year of the patient's history, up to two words before it ("s/p CABG 1957", "since 2006", "diagnosed in 1983"). */
const YEAR_CUE =
  "in|since|s/p|status\\s+post|dx'?d?|diagnosed|hx\\s+of|history\\s+of|year|yr|summer|winter|spring|fall|autumn|until|circa|born";
/** Moving a patient or a relative somewhere, or being there: the place follows ("transferred to GH", "son lives in Pikesville"). */
const MOVEMENT_CUE = words(`
  (?:trans?fer(?:r?ed)?|tranfer(?:r?ed)?|tx'?d?)\\s+(?:back\\s+)?(?:to|from) admitted\\s+(?:to|from) went\\s+to
  presented\\s+(?:to|at) taken\\s+to brought\\s+to (?:med-?)?flighted\\s+to sent\\s+(?:to|from)
  discharged\\s+(?:to|from) rec(?:ie|ei)ved\\s+from returned\\s+(?:to|from) lives?\\s+(?:alone\\s+)?(?:in|at) living\\s+in
  works?\\s+(?:at|for) f/u\\s+w/ (?:fly|flying)\\s+(?:in\\s+)?from c/o\\s+to
`);
/** Words that start no name: a candidate beginning with one is another phrase ("spoke to MD", "updated by RN"). */
/** A word as written at the start of a phrase, in lower case or in capitals: "by" gives `[Bb]y\\b|BY\\b`. */
const capitalisedOrCapitals = (w: string) => `[${w[0]!.toUpperCase()}${w[0]}]${w.slice(1)}\\b|${w.toUpperCase()}\\b`;
const NOT_NAME_START = `(?!${'by to with and the of per from for at on in'.split(' ').map(capitalisedOrCapitals).join('|')})`;

/** Every rule, in the order ties are broken (earlier wins when two rules find the same span). */
export const RULES: readonly Rule[] = [
  // ---------------------------------------------------------------- DATE
  // A month name in lower case is taken only with a year after it: "may 16, 2015", not "may represent".
  {
    name: 'date_month_name_day',
    label: 'DATE',
    requires: m(`\\b${MONTH}\\.?\\s+\\d`, 'i'),
    pattern: m(
      `\\b${WEEKDAY}?${MONTH}\\.?\\s+\\d{1,2}${ORDINAL}?(?:,?\\s+(?:\\d{4}|'\\d{2}))?\\b(?!\\s*(?:mm|cm|mg|ml|%))`,
      'gi',
    ),
    accept: (v) => /^[A-Z]/.test(v) || /(?:\d{4}|'\d{2})$/.test(v),
  },
  {
    name: 'date_day_month_name',
    label: 'DATE',
    requires: DIGIT,
    pattern: m(
      `\\b${WEEKDAY}?\\d{1,2}${ORDINAL}?\\s+(?:of\\s+)?${MONTH}\\.?(?:,?\\s+\\d{4}|,?\\s+'?\\d{2}\\b)?\\b`,
      'gi',
    ),
    accept: (v) => !/\s(?:may|mar|jan|jun|dec|sept?|aug|oct|nov|apr|feb|jul)\b/.test(v) || /\d{2}$/.test(v),
  },
  {
    name: 'date_month_name_year',
    label: 'DATE',
    requires: DIGIT,
    // "May 2015", "march of 2022", "may '15", "may 15'".
    pattern: m(`\\b${MONTH}\\.?,?\\s+(?:of\\s+)?(?:(?:19|20)\\d{2}\\b|['’]\\d{2}\\b|\\d{2}['’](?![\\w'’]))`, 'gi'),
  },
  {
    name: 'date_month_name_alone',
    label: 'DATE',
    pattern: /\b(?:January|February|March|April|June|July|August|September|October|November|December)\b/g,
  },
  {
    name: 'date_numeric_mdy',
    label: 'DATE',
    requires: DIGIT,
    pattern: /\b(\d{1,2})([/.-])(\d{1,2})\2(\d{4}|\d{2})\b(?![.-]\d|\/\d|\s*%)/g,
    accept: (_v, mt) => validYear(mt[4]!) && (validMonthDay(+mt[1]!, +mt[3]!) || validMonthDay(+mt[3]!, +mt[1]!)),
  },
  {
    name: 'date_numeric_ymd',
    label: 'DATE',
    requires: DIGIT,
    pattern: /\b((?:19|20)\d{2})([/.-])(\d{1,2})\2(\d{1,2})\b/g,
    accept: (_v, mt) => validMonthDay(+mt[3]!, +mt[4]!),
  },
  {
    name: 'date_compact_ymd',
    label: 'DATE',
    requires: DIGIT,
    pattern: /\b(?:19|20)\d{2}(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])\b/g,
  },
  {
    name: 'date_compact_dmy',
    label: 'DATE',
    requires: DIGIT,
    pattern: m(`\\b\\d{1,2}-?${MONTH}-?(?:\\d{4}|\\d{2})\\b`, 'gi'),
    accept: (v) => /[a-z]/i.test(v) && /^\d/.test(v),
  },
  // "8/23", "on 3/4", "fx4/97", "unit.9/3", "6/30-7/2"; not "CPAP 5/5", "D5 1/2 NS", "pain 8/10", "0.5/1".
  {
    name: 'date_month_day',
    label: 'DATE',
    requires: DIGIT,
    pattern: /(?<![\d/,])(?<!\d\.)(\d{1,2})\/(\d{1,2})(?![\d/]|\.\d)/g,
    accept: (_v, mt, text) => noteMonthDay(+mt[1]!, +mt[2]!, mt, text) && !followedBy(mt, text, MEASUREMENT_UNIT),
  },
  // Month and two-digit year: "CABG 1/78", "CA (12/93)"; a second number over 31 cannot be a day.
  // A year written with an apostrophe ("CABG '79", "stopped smoking 62'", "prostate CA'88"): a date element in this form only; feet and inches ("5'10") have a digit next to it.
  {
    name: 'date_year_apostrophe',
    label: 'DATE',
    requires: /\d['’]|['’]\d/,
    pattern: /(?<![\d'’])['’]\d{2}(?![\w'’"”])|(?<![\w'’.])\d{2}['’](?![\w'’"”])/g,
  },
  // A year of the patient's history ("s/p resection 1977", "since 2006", "in 1983"): with a history cue before it, never a time of day ("at 1900").
  {
    name: 'date_year_history',
    label: 'DATE',
    requires: DIGIT,
    pattern: m(
      `\\b(?:${anyCase(YEAR_CUE)})[ \\t]+(?:(?:[A-Za-z]+[ \\t]+){0,2}?)(?<phi>(?:19[3-9]\\d|20[0-3]\\d)(?:[ \\t]*,[ \\t]*(?:19[3-9]\\d|20[0-3]\\d))*)\\b(?![:.]?\\d)`,
      'gd',
    ),
    group: 'phi',
  },
  // A year with no cue ("old CVA 2008", "knows it is 2019"), unless it reads as a time of day or an amount: after "at",
  // "@", "~", "x", on the quarter hour ("given at 2000", "1930"), or before a unit ("2000cc").
  {
    name: 'date_year_alone',
    label: 'DATE',
    requires: DIGIT,
    pattern: /(?<![\w/.:@~-])(?:19[3-9]\d|20[0-3]\d)(?![\w/:-])/g,
    accept: (v, mt, text) =>
      !/(?:00|15|30|45)$/.test(v) &&
      !TIME_CUE_BEFORE.test(before(mt, text, 12)) &&
      !followedBy(mt, text, /^\s*(?:cc|ml|mg|mcg|units?\b|u\b|k?cal\b|gm?\b|%|hrs?\b)/i),
  },
  {
    name: 'date_month_year2',
    label: 'DATE',
    requires: DIGIT,
    pattern: /(?<![\d/,])(?<!\d\.)(\d{1,2})\/(\d{2})(?![\d/]|\.\d)/g,
    accept: (_v, mt, text) =>
      +mt[1]! >= 1 &&
      +mt[1]! <= 12 &&
      +mt[2]! > 31 &&
      !SETTING_BEFORE.test(before(mt, text)) &&
      !followedBy(mt, text, NOT_DATE_AFTER) &&
      !followedBy(mt, text, MEASUREMENT_UNIT),
  },
  {
    name: 'date_month_year',
    label: 'DATE',
    requires: DIGIT,
    pattern: /(?<![\d/.-])(\d{1,2})[/-]((?:19|20)\d{2})\b(?![/-]\d)/g,
    accept: (_v, mt) => +mt[1]! >= 1 && +mt[1]! <= 12,
  },
  {
    name: 'date_ordinal_day',
    label: 'DATE',
    requires: DIGIT,
    pattern: m(
      `\\b(?:on|since|from|until|till|by|before|after|of|since)\\s+the\\s+(?<phi>\\d{1,2}${ORDINAL})\\b(?!${NOT_A_DAY})`,
      'gid',
    ),
    group: 'phi',
  },
  // ---------------------------------------------------------------- AGE (over 89 only)
  {
    name: 'age_years_old',
    label: 'AGE',
    requires: DIGIT,
    pattern: /\b(?<phi>9\d|1[0-4]\d)(?=[\s-]*(?:years?\b|yrs?\b|yo\b|y\/o|y\.o\.?|year-old|yr-old))/dgi,
    group: 'phi',
  },
  {
    name: 'age_context',
    label: 'AGE',
    requires: DIGIT,
    pattern: /\b(?:aged?|age:|at\s+age|turn(?:s|ed)?|turning)\s*(?<phi>9\d|1[0-4]\d)\b/dgi,
    group: 'phi',
  },
  {
    name: 'age_decade',
    label: 'AGE',
    requires: DIGIT,
    pattern: /\b(?:in\s+(?:his|her|their)\s+(?:early\s+|mid\s+|late\s+)?)(?<phi>9\d|1[0-4]\d)s\b/dgi,
    group: 'phi',
  },
  {
    name: 'age_sex',
    label: 'AGE',
    requires: DIGIT,
    pattern: /\b(?<phi>9\d|1[0-4]\d)\s?(?:M|F|yo?[MF])\b/dg,
    group: 'phi',
  },
  // ---------------------------------------------------------------- ID
  { name: 'ssn', label: 'ID', requires: DIGIT, pattern: /\b\d{3}([- ])\d{2}\1\d{4}\b/g },
  {
    name: 'id_context',
    label: 'ID',
    requires: DIGIT,
    pattern: m(
      `\\b${ID_CUE}(?![a-z])[\\s:#.=-]*(?:is\\s+|of\\s+|was\\s+)?(?<phi>[A-Za-z0-9](?:[A-Za-z0-9-]{1,}[A-Za-z0-9])?)\\b`,
      'gid',
    ),
    group: 'phi',
    accept: (v) => digitCount(v) >= 4 && !/^\d+(?:mm|cm|mg|ml)$/i.test(v) && !/\d\.\d/.test(v),
  },
  {
    name: 'id_number_sign',
    label: 'ID',
    requires: '#',
    pattern: /#\s?(?<phi>[A-Z]{0,3}\d{4,}[A-Z0-9-]*)\b/dg,
    group: 'phi',
    accept: (_v, mt, text) => !m(`\\b${PHONE_CUE}\\W*$`, 'i').test(before(mt, text, 20)),
  },
  {
    name: 'card_grouped',
    label: 'ID',
    requires: DIGIT,
    pattern: /\b(?:\d{4}[\s-]){3}\d{1,4}\b|\b\d{4}[\s-]\d{6}[\s-]\d{4,5}\b/g,
  },
  // A long number, with the hyphenated tail that belongs to it ("123456-7890").
  { name: 'long_number', label: 'ID', requires: DIGIT, pattern: /(?<![\d.,])\d{6,}(?:-\d{1,4})?(?![\d]|[.,]\d)/g },
  // A code of letters and at least five digits: "PJN123456", "A1234567"; not doses, rates or settings (500x12, 95CC, 700X15).
  {
    name: 'alphanumeric_code',
    label: 'ID',
    requires: DIGIT,
    pattern: /\b(?:[A-Z]{1,4}-?\d{5,}[A-Z]{0,3}|\d{5,}-?[A-Z]{1,4})\b/g,
    accept: (v) => !/x\d|\dx/i.test(v) && !/^\d+(?:mm|cm|mg|ml|cc|kg|mcg|units|iu|u|hr|hrs)$/i.test(v),
  },
  // ---------------------------------------------------------------- CONTACT
  {
    name: 'email',
    label: 'CONTACT',
    requires: '@',
    pattern: /(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}/g,
  },
  {
    name: 'url',
    label: 'CONTACT',
    requires: /:\/\/|www\./i,
    pattern: /\b(?:https?:\/\/|ftp:\/\/|www\.)[^\s<>"'\]]+[^\s<>"'\].,;:!?)]/gi,
  },
  {
    name: 'domain_name',
    label: 'CONTACT',
    requires: /\.(?:com|org|net|edu|gov)\b/,
    pattern: /\b(?:[A-Za-z0-9][A-Za-z0-9-]*\.)+(?:com|org|net|edu|gov)\b(?:\/[^\s]*[^\s.,;:!?)])?/g,
  },
  {
    name: 'ipv4',
    label: 'CONTACT',
    requires: /\d\.\d{1,3}\.\d/,
    pattern: /(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?![\d.]*\d)/g,
  },
  // "(617) 555-1234", "201/324/1423", "212- 476- 8356", "CELLULAR-410 202-6694", with an extension.
  {
    name: 'phone_us',
    label: 'CONTACT',
    requires: DIGIT,
    pattern: m(`(?<![\\w.+])(?<!\\d[-/])${PHONE_US}(?:\\s*(?:x|ext\\.?|extension)\\s*\\d{1,6})?`, 'gi'),
  },
  {
    name: 'phone_international',
    label: 'CONTACT',
    requires: '+',
    pattern: /(?<![\w.])\+\d{1,3}(?:[\s.-]?\(?\d{1,4}\)?){2,6}(?![\w])/g,
    accept: (v) => digitCount(v) >= 9,
  },
  {
    name: 'phone_context',
    label: 'CONTACT',
    requires: DIGIT,
    pattern: m(
      `\\b${PHONE_CUE}\\b[.:#\\s]*(?:no\\.?|number|#)?[.:#\\s]*(?<phi>\\+?\\(?\\d[\\d\\s().-]{2,18}\\d)(?![\\d.]*\\d)`,
      'gid',
    ),
    group: 'phi',
    accept: (v, mt, text) =>
      digitCount(v) >= 4 &&
      !/\d\.\d/.test(v) &&
      !followedBy(mt, text, MEASUREMENT_UNIT) &&
      !followedBy(mt, text, /^\s*(?:am|pm|hrs?|mins?|x\b|%)/i),
  },
  {
    name: 'phone_extension',
    label: 'CONTACT',
    requires: DIGIT,
    pattern: /\b(?:ext|extension)\.?\s?(?<phi>\d{3,6})\b/dgi,
    group: 'phi',
    accept: (_v, mt, text) => !followedBy(mt, text, MEASUREMENT_UNIT),
  },
  // ---------------------------------------------------------------- NAME (where the context is strong; the tagger carries the rest)
  // "Dr. Smith", "DR SMITH", "dr. smith", "Mrs. Burns", "Drs' Ballou and Dutter": a title in any case, then a name.
  {
    name: 'name_after_title',
    label: 'NAME',
    pattern: m(
      `\\b${TITLE_ANY_CASE}${AFTER_TITLE}(?<phi>(?:${INITIAL}[ \\t]+)?${NAME_TOKEN}(?:[ \\t]+(?:${INITIAL}[ \\t]+)?${NAME_TOKEN})?)`,
      'gd',
    ),
    group: 'phi',
    accept: (v, mt, text) => nameSequence(v, mt, text) && secondNameAfterTitle(v),
  },
  {
    name: 'name_after_title',
    label: 'NAME',
    pattern: m(`\\b${TITLE_ANY_CASE}${AFTER_TITLE}(?:${INITIAL}[ \\t]+)?(?<phi>${NAME_TOKEN})`, 'gd'),
    group: 'phi',
    accept: (v, mt, text) => nameSequence(v, mt, text),
  },
  // "DR.GATEMAN", "Dr.Sawtelle": a title joined to the word by its dot is always followed by a name, English word or not.
  {
    name: 'name_after_title_dot',
    label: 'NAME',
    requires: /\.[A-Za-z]/,
    pattern: m(`\\b${anyCase('(?:Dr|Drs|Mr|Mrs|Ms|Prof|Rev)')}\\.(?<phi>${NAME_TOKEN})`, 'gd'),
    group: 'phi',
    accept: (v) => v.length > 2 && !stopWord(v) && !VERBS_AFTER_TITLE.has(key(v)) && !EPONYMS_NOT_NAMES.has(key(v)),
  },
  // "Dr. Rakusin and Toolis aware": the second name after "and" shares the title.
  {
    name: 'name_after_title',
    label: 'NAME',
    pattern: m(`\\b${TITLE_ANY_CASE}s?${AFTER_TITLE}${NAME_TOKEN}[ \\t]+(?:and|&)[ \\t]+(?<phi>${NAME_TOKEN})`, 'gd'),
    group: 'phi',
    accept: (v, mt, text) => nameSequence(v, mt, text),
  },
  // "ANTHONY C. KOZICKI, RRT", "s. roberto rrt", "Maria Lopez, MD": a signature.
  {
    name: 'name_with_credentials',
    label: 'NAME',
    retryInside: true,
    requires: m(`[ \\t]${CREDENTIALS}\\b`, ''),
    pattern: m(
      `(?<![A-Za-z0-9'’-])${NOT_NAME_START}(?<phi>(?:${INITIAL}[ \\t]+)?${NAME_TOKEN}(?:[ \\t]+(?:${INITIAL}[ \\t]+)?${NOT_NAME_START}${NAME_TOKEN}){0,2}),?[ \\t]+${CREDENTIALS}\\b`,
      'gd',
    ),
    group: 'phi',
    accept: credentialName,
  },
  // "daughter Marcela Carlson", "wife, Carol Buckley", "SON ROB"?, "IV nurse Virginia Sallese".
  {
    name: 'name_after_person_cue',
    label: 'NAME',
    pattern: m(
      `\\b${PERSON_CUE}\\b[ \\t]*(?:,|:|-|\\(|is|named|["“])?[ \\t]*(?<phi>${NAME_TOKEN}(?:[ \\t]+(?:${INITIAL}[ \\t]+)?${NAME_TOKEN})?)`,
      'gd',
    ),
    group: 'phi',
    // "mother and father, Henry Jones": the refused "mother and father" must not hide the cue inside it.
    retryInside: true,
    accept: (v, mt, text) => nameSequence(v, mt, text, false),
  },
  {
    name: 'name_after_person_cue',
    label: 'NAME',
    pattern: m(`\\b${PERSON_CUE}\\b[ \\t]*(?:,|:|-|\\(|is|named|["“])?[ \\t]*(?<phi>${NAME_TOKEN})`, 'gd'),
    group: 'phi',
    accept: (v, mt, text) => nameSequence(v, mt, text, false),
  },
  // "daughters sarah and margie", "sons Tom & Will": the second name shares the cue.
  {
    name: 'name_after_person_cue',
    label: 'NAME',
    pattern: m(
      `\\b${PERSON_CUE}\\b[ \\t]*(?:,|:|-)?[ \\t]*(?<first>${NAME_TOKEN})[ \\t]+(?:and|&)[ \\t]+(?<phi>${NAME_TOKEN})`,
      'gd',
    ),
    group: 'phi',
    accept: (v, mt, text) => nameSequence(`${mt.groups!.first!} ${v}`, mt, text, false),
  },
  // A name with the person's relation or role after it in brackets ("URSLA MORETTI (DAUGHTER)", "Will Cole (resident)"):
  // a cue as strong as a title, so in capitals a word no lexicon knows counts too.
  {
    name: 'name_before_relation',
    label: 'NAME',
    pattern: m(
      `(?<phi>${NAME_TOKEN}(?:[ \\t]+(?:${INITIAL}[ \\t]+)?${NAME_TOKEN})?)[ \\t]*\\([ \\t]*${PERSON_CUE}[ \\t]*\\)`,
      'gd',
    ),
    group: 'phi',
    requires: m(`\\([ \\t]*${PERSON_CUE}[ \\t]*\\)`, ''),
    accept: (v, mt, text) => nameSequence(v, mt, text),
  },
  // "discussed with Ann Fisher", "spoke with Dr. ...": only census names, a weaker cue than a title.
  {
    name: 'name_after_talk',
    label: 'NAME',
    pattern: m(
      `\\b${TALK_CUE}\\b[ \\t]*:?[ \\t]*(?<phi>${NAME_TOKEN}(?:[ \\t]+(?:${INITIAL}[ \\t]+)?${NAME_TOKEN})?)`,
      'gd',
    ),
    group: 'phi',
    accept: talkedToName,
  },
  // ...and the given name alone when the word after it is none ("unable to reach Gloria until noon").
  {
    name: 'name_after_talk',
    label: 'NAME',
    pattern: m(`\\b${TALK_CUE}\\b[ \\t]*:?[ \\t]*(?<phi>${NAME_TOKEN})`, 'gd'),
    group: 'phi',
    accept: talkedToName,
  },
  // The subject of a note's opening sentence: "Jane Roe is a 70 yo woman ..." (the age keeps it from "this is a").
  {
    name: 'name_before_age',
    label: 'NAME',
    pattern: m(
      `(?<![A-Za-z0-9'’.-])(?<phi>${NAME_TOKEN}(?:[ \\t]+${NAME_TOKEN})?)[ \\t]+(?:is|was)[ \\t]+an?[ \\t]+\\d{1,3}[ \\t]*-?[ \\t]*(?:y\\.?o|yr|year)`,
      'gdi',
    ),
    group: 'phi',
    requires: /\b(?:is|was)[ \t]+an?[ \t]+\d{1,3}[ \t]*-?[ \t]*(?:y\.?o|yr|year)/i,
    accept: (v, mt, text) => nameSequence(v, mt, text),
  },
  // A labelled name field: "Patient: SMITH, JOHN", "Name: Jane Doe".
  {
    name: 'name_labelled',
    label: 'NAME',
    pattern: m(
      `\\b${anyCase("(?:patient(?:'s)?\\s+name|patient|pt\\s+name|name)")}[ \\t]*:[ \\t]*(?<phi>${NAME_TOKEN},[ \\t]*${NAME_TOKEN}|${NAME_TOKEN}[ \\t]+${NAME_TOKEN})`,
      'gd',
    ),
    group: 'phi',
    accept: (v) => v.split(/[\s,]+/).every((t) => !stopWord(t) && (censusName(key(t)) || !clinicalWord(key(t)))),
  },
  // An initial and a surname where a clinician is told or acts: "E. SMITH AWARE", "per d ross", "by C. JONES".
  {
    name: 'name_initial_surname',
    label: 'NAME',
    pattern: m(
      `(?<![\\w.])(?<phi>(?![Aalr][ \\t])[A-Za-z](?:\\.[ \\t]?|[ \\t])(?<last>[A-Za-z][a-z'’-]+|[A-Z][A-Z'’-]+))(?=[ \\t]*(?:${anyCase(STAFF_FOLLOWER)})\\b)`,
      'gd',
    ),
    group: 'phi',
    accept: (_v, mt) => initialSurname(mt.groups!.last!),
  },
  {
    name: 'name_initial_surname',
    label: 'NAME',
    pattern: m(
      `\\b(?:${anyCase('per|by')})[ \\t]+(?<phi>(?![Aalr][ \\t])[A-Za-z](?:\\.[ \\t]?|[ \\t])(?<last>[A-Za-z][a-z'’-]+|[A-Z][A-Z'’-]+))\\b`,
      'gd',
    ),
    group: 'phi',
    accept: (_v, mt) => initialSurname(mt.groups!.last!),
  },
  // "Patient John Smith": after the word patient, a capitalised given name that is also a word ("John", "Will") counts, as after a comma.
  {
    name: 'name_after_patient',
    label: 'NAME',
    pattern: m(
      `\\b(?:[Pp]atient|PATIENT|[Pp]t\\.?|PT)[ \\t]+(?<phi>(?<first>[A-Z][a-z'’]+)[ \\t]+(?<last>[A-Z][a-z'’]+(?:-[A-Z][a-z'’]+)?))\\b`,
      'gd',
    ),
    group: 'phi',
    accept: (_v, mt, text) => dictionaryName(mt.groups!.first!, mt.groups!.last!, mt, text, true),
  },
  // "Smith, John": the comma order lets a given name that is also a word ("John", "Will") count.
  {
    name: 'name_last_comma_first',
    label: 'NAME',
    pattern: /\b(?<last>[A-Z][a-z'’-]+), ?(?<first>[A-Z][a-z'’-]+)(?: [A-Z]\.?(?![a-z]))?/g,
    accept: (_v, mt, text) => dictionaryName(mt.groups!.first!, mt.groups!.last!, mt, text, true),
  },
  {
    name: 'name_first_last',
    label: 'NAME',
    pattern:
      /\b(?<first>[A-Z][a-z'’]+|[A-Z]{2,}) (?:[A-Z]\.? )?(?<last>[A-Z][a-zA-Z'’]*(?:-[A-Z][a-zA-Z'’]*)?[a-zA-Z])\b/g,
    accept: (_v, mt, text) => dictionaryName(mt.groups!.first!, mt.groups!.last!, mt, text),
  },
  {
    name: 'name_world_pair',
    label: 'NAME',
    pattern:
      /(?<![\p{L}'’-])(?<first>\p{Lu}[\p{Ll}'’]+)[ \t]+(?:\p{Lu}\.?[ \t]+)?(?<last>\p{Lu}[\p{Ll}'’]+)(?![\p{L}'’-])/gu,
    accept: (_v, mt, text) => worldNamePair(mt.groups!.first!, mt.groups!.last!, mt, text),
  },
  {
    name: 'name_given_alone',
    label: 'NAME',
    pattern: /(?<![A-Za-z'’-])[A-Z][a-z]{2,}(?![A-Za-z'’-])/g,
    accept: (v, mt, text) => givenNameAlone(v, mt, text),
  },
  // ---------------------------------------------------------------- LOCATION
  {
    name: 'street_address',
    label: 'LOCATION',
    requires: DIGIT,
    pattern: m(
      `\\b\\d{1,6}[A-Za-z]?\\s+(?:[NSEW]\\.?\\s+)?(?:(?:[A-Z][a-z'’.-]+|\\d{1,3}(?:st|nd|rd|th))\\s+){1,4}${STREET_SUFFIX}\\b\\.?(?:,?\\s*(?:Apt|Apartment|Suite|Ste|Unit|#)\\.?\\s*[A-Za-z0-9-]+)?`,
      'g',
    ),
    accept: (v) =>
      !v
        .split(/\s+/)
        .slice(1, -1)
        .some((w) => MEDICAL_TERMS.has(key(w)) && !censusName(key(w))),
  },
  {
    name: 'street_international',
    label: 'LOCATION',
    requires: DIGIT,
    pattern:
      /\b[A-ZÀ-Þ][a-zA-Zà-ÿ]+(?:katu|vägen|gatan|gata|gade|vej|veien|straße|strasse|straat|gasse|platz|utca)\s+\d+[A-Za-z]?\b/g,
  },
  {
    name: 'address_unit',
    label: 'LOCATION',
    requires: DIGIT,
    pattern: /\b(?:Apt|Apartment|Suite|Ste)\.?\s*#?\s*\d+[A-Z]?\b/g,
  },
  {
    name: 'po_box',
    label: 'LOCATION',
    requires: DIGIT,
    pattern: /\b(?:P\.?\s?O\.?\s?Box|Post\s+Office\s+Box)\s+\d+\b/gi,
  },
  {
    name: 'city_before_state',
    label: 'LOCATION',
    pattern: m(`\\b(?<phi>[A-Z][a-z]+(?:[ -][A-Z][a-z]+){0,2}),\\s+(?:${STATE_ABBR}|${STATE_NAME})\\b(?![a-z])`, 'gd'),
    group: 'phi',
    accept: (v) => !NOT_LOCATIONS.has(v.toLowerCase()) && !v.split(/[ -]/).some(stopWord),
  },
  {
    name: 'zip_after_state',
    label: 'LOCATION',
    requires: DIGIT,
    pattern: m(`\\b(?:${STATE_ABBR}|${STATE_NAME}),?\\s+(?<phi>\\d{5}(?:-\\d{4})?)\\b`, 'gd'),
    group: 'phi',
  },
  {
    name: 'zip_context',
    label: 'LOCATION',
    requires: DIGIT,
    pattern:
      /\b(?:zip(?:\s*code)?|postal\s+code|postcode)[\s:#]*(?:is\s+)?(?<phi>\d{5}(?:-\d{4})?|[A-Z]\d[A-Z]\s?\d[A-Z]\d)\b/dgi,
    group: 'phi',
  },
  // "Harbor Hosp", "FREDERICK MEMORIAL", "St Mary hospital", "Brookside Family Practice".
  {
    name: 'institution',
    label: 'LOCATION',
    requires: m(`\\b${INSTITUTION_TYPE}`, ''),
    pattern: m(
      `(?<phi>(?:\\b(?:St\\.?|Saint|Mount|Mt\\.?|ST\\.?)\\s+)?(?:\\b${NOT_IN_INSTITUTION_NAME}(?:[A-Z][A-Za-z'’&-]*|[A-Z]{2,})\\s+(?:(?:of|and|&|the)\\s+)?){1,4}${INSTITUTION_TYPE}(?:\\s+(?:of|at)\\s+(?:[A-Z][A-Za-z'’-]+\\s?){1,3})?)(?![A-Za-z])`,
      'gd',
    ),
    group: 'phi',
    accept: institutionName,
    retryInside: true,
    kindAtEnd: INSTITUTION_KIND_AT_END,
  },
  // Hospitals named for a devotion ("went to HOLY CROSS", "from sacred heart hosp"): the name alone, in any case.
  {
    name: 'institution_devotional_name',
    label: 'LOCATION',
    requires: /holy|samaritan|sacred|lady/i,
    pattern: m(
      `\\b${anyCase('(?:holy[ \\t]+(?:cross|family|name|redeemer)|good[ \\t]+samaritan|sacred[ \\t]+heart|our[ \\t]+lady[ \\t]+of[ \\t]+(?:the[ \\t]+)?[A-Za-z]+)')}\\b`,
      'g',
    ),
  },
  {
    name: 'institution_of',
    label: 'LOCATION',
    requires: /\bU\b| of /i,
    pattern: m(
      `(?:\\b${anyCase('(?:University|Hospital|College|Institute)')}|(?<!\\d\\s*)\\bU)\\s+${anyCase('of')}\\s+(?:${anyCase(`(?:${STATE_NAME})`)}\\b|(?:[A-Z][A-Za-z'’-]+\\s?){1,3})|(?<!\\d\\s*)\\bU\\.?\\s+${anyCase(`(?:${STATE_NAME})`)}\\b`,
      'g',
    ),
    accept: (v) => !/\bof\s+(?:Medicine|Pharmacy|Nursing)\b/i.test(v),
    kindAtEnd: INSTITUTION_KIND_AT_END,
  },
  // Hospital initialisms ending in MC (Medical Center): "a transfer from the XYZMC".
  {
    name: 'institution_initialism',
    label: 'LOCATION',
    requires: /[A-Z]MC\b/,
    pattern: /\b[A-Z]{1,4}MC\b/g,
    accept: (v) => !ACRONYMS.has(v) && !MEDICAL_TERMS.has(v.toLowerCase()),
  },
  {
    name: 'place_unknown_word',
    label: 'LOCATION',
    pattern: /\b(?:from|in|near|lives\s+in|resides\s+in)\s+(?<phi>[A-Z][a-z]+(?:[ -][A-Z][a-z]+)?)\b/dg,
    group: 'phi',
    accept: (v, mt, text) => unknownPlace(v, mt, text),
  },
  // In capitals or lower case only a major city is told from a word: "SON FROM MIAMI", "lives in baltimore".
  ...['(?<phi>[a-z]+[ \\t][a-z]+|[A-Z]+[ \\t][A-Z]+)', '(?<phi>[a-z]+|[A-Z]+)'].map((city): Rule => ({
    name: 'major_city_any_case',
    label: 'LOCATION',
    pattern: m(`\\b${anyCase('(?:from|in|near)')}[ \\t]+${city}\\b`, 'gd'),
    group: 'phi',
    accept: (v, mt, text) => majorCity(v) && !followedBy(mt, text, EPONYM_NOUN),
    retryInside: true, // "IN FROM SEATTLE": the refused "IN FROM" must not swallow the cue
  })),
  // A campus or a veterans' hospital named by the place before it ("mackerer campus", "BALTIMORE VA"); "main campus" is no name.
  {
    name: 'campus_or_va',
    label: 'LOCATION',
    pattern: m(`\\b(?<phi>[A-Za-z][A-Za-z'’-]+)[ \\t]+(?:${anyCase('campus')}|VA|VAMC)\\b`, 'gd'),
    group: 'phi',
    requires: /campus|VA/i,
    accept: (v) => !stopWord(v) && !GENERIC_PLACE.has(v.toLowerCase()) && !clinicalWord(key(v)),
  },
  {
    name: 'ward',
    label: 'LOCATION',
    requires: /\b(?:Ward|Wing|Pavilion|Tower|Building|Bldg)\b/,
    pattern:
      /\b(?:Ward|Wing|Pavilion|Tower|Building|Bldg\.?)\s+[A-Z0-9][A-Za-z0-9-]*\b|\b[A-Z][a-z]+(?:\s+[A-Z][a-z]+)?\s+(?:Ward|Wing|Pavilion|Tower|Building)\b/g,
    accept: (v) =>
      /\d/.test(v) || v.split(/\s+/).some((w) => !GENERIC_PLACE.has(w.toLowerCase()) && !WARD_WORD.test(w)),
  },
  // "lives alone in white amrsh,", "lives in glen burnie.": a town of two words where someone lives, in any case, when one
  // of them is no word or a town of the world lists ("assisted living", "nursing home", "an apartment" stay).
  {
    name: 'place_where_one_lives',
    label: 'LOCATION',
    requires: /\b(?:lives?|living|resides?)\s/i,
    pattern: m(
      `\\b${anyCase('(?:lives?|living|resides?)')}[ \\t]+(?:${anyCase('alone')}[ \\t]+)?${anyCase('in')}[ \\t]+(?<phi>[A-Za-z][A-Za-z'’-]+[ \\t]+[A-Za-z][A-Za-z'’-]+)(?=[ \\t]*(?:[,.;:()]|$))`,
      'gdm',
    ),
    group: 'phi',
    accept: (v) => {
      const words = v.split(/[ \t]+/);
      const known = (w: string) => ENGLISH_WORDS.has(key(w)) || MEDICAL_TERMS.has(key(w));
      return (
        words.every((w) => !neverNamePart(w) && !CLINICAL_UNITS.has(w.toUpperCase())) &&
        words.some((w) => !known(w) || (WORLD_CITIES.has(key(w)) && !MEDICAL_TERMS.has(key(w))))
      );
    },
  },
  // "he works for vista health": an employer named by one or two words and what kind of organisation it is.
  {
    name: 'place_employer',
    label: 'LOCATION',
    requires: /\bworks?\s+(?:at|for)\s/i,
    pattern: m(
      `\\b${anyCase('works?')}[ \\t]+${anyCase('(?:at|for)')}[ \\t]+(?<phi>(?:[A-Za-z][A-Za-z'’-]+[ \\t]+){1,2}${anyCase('(?:health|healthcare|bank|labs?|systems|corp|corporation|inc|company|insurance|motors|airlines)')})\\b`,
      'gd',
    ),
    group: 'phi',
    accept: (v) => {
      const name = v.split(/[ \t]+/).slice(0, -1);
      return (
        name.every((w) => !neverNamePart(w) && !MEDICAL_TERMS.has(key(w))) &&
        name.some((w) => !GENERIC_PLACE.has(w.toLowerCase()))
      );
    },
  },
  // "at seymour black's house": a home named by its owner is a place.
  {
    name: 'place_home_of',
    label: 'LOCATION',
    requires: /['’]s\s+(?:house|home|apartment|place)/i,
    pattern: m(
      `\\b${anyCase('at')}[ \\t]+(?<phi>${NAME_TOKEN}(?:[ \\t]+${NAME_TOKEN})?)['’][sS][ \\t]+${anyCase('(?:house|home|apartment|place)')}\\b`,
      'gd',
    ),
    group: 'phi',
    accept: (v) => v.split(/[ \t]+/).every((w) => !neverNamePart(w) && nameAfterCue(w, true)),
  },
  {
    name: 'place_after_movement',
    label: 'LOCATION',
    pattern: m(
      `\\b${anyCase(MOVEMENT_CUE)}[ \\t]+(?:${anyCase('the')}[ \\t]+)?(?<phi>[A-Za-z][A-Za-z'’]*[A-Za-z])\\b(?!-)`,
      'gd',
    ),
    group: 'phi',
    accept: placeAfterMovement,
  },
  {
    name: 'place_after_context',
    label: 'LOCATION',
    pattern: m(
      `\\b${anyCase(PLACE_CUE)}\\s+(?<phi>(?:St\\.?\\s)?[A-Z][a-zA-Z'’-]+(?:[\\s-](?:[A-Z][a-zA-Z'’-]+)){0,2})`,
      'gd',
    ),
    group: 'phi',
    accept: (v, mt, text) =>
      unknownPlace(v, mt, text) ||
      (institutionName(`${v} x`) &&
        v.split(/\s+/).every((w) => !stopWord(w) && !clinicalWord(key(w)) && !MEDICAL_TERMS.has(key(w)))),
  },
];
