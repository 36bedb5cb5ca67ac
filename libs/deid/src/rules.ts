import { ACRONYMS, ENGLISH_WORDS, EPONYMS, FIRST_NAMES, LAST_NAMES, NOT_LOCATIONS, NOT_NAMES, US_STATES, WORLD_CITIES, WORLD_NAMES, NATIONALITIES, FOREIGN_WORDS } from './dictionaries';
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
}

const MONTH =
  '(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sept?(?:ember)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)';
const WEEKDAY = '(?:(?:Mon|Tues?|Wed(?:nes)?|Thu(?:rs)?|Fri|Sat(?:ur)?|Sun)(?:day)?\\.?,?\\s+)';
const ORDINAL = '(?:st|nd|rd|th)';
/** Words after an ordinal that make it anatomy or a count, not a day: "7th rib", "5th decade". */
const NOT_A_DAY =
  '(?:\\s*(?:and|or|-|to|through)\\s*\\d{1,2}(?:st|nd|rd|th)?)?\\s*(?:ribs?|posterior|anterior|lateral|intercostal|interspaces?|space|costal|costochondral|thoracic|cervical|lumbar|sacral|vertebra[el]?|vertebral|metacarpal|metatarsal|digit|finger|toe|ventricle|percentile|decade|generation|grade|degree|time|day|week|month|year|hour|dose|cycle|fraction|line|order|division|branch|segment|level)';
/** Latin letters with accents ("Müller", "Šárka"): names are not only ASCII. */
const UPPER = 'A-ZÀ-ÖØ-ÞĀ-Ž';
const LETTER = 'a-zA-ZÀ-ÖØ-öø-ÿĀ-ž';
const NAME_TOKEN = `[${UPPER}][${LETTER}'’]*(?:-[${UPPER}][${LETTER}'’]*)?[${LETTER}]`;
const INITIALS = '[A-Z]\\. ?(?:[A-Z]\\. ?){0,2}';
/** A name after a context: "Smith", "John Smith", "J. Smith", "John A. Smith", "Smith, John", "J.D.", "JD". */
const NAME_SEQUENCE = `(?:${NAME_TOKEN}, ?${NAME_TOKEN}(?: [A-Z]\\.?(?![a-z]))?|(?:${INITIALS})?${NAME_TOKEN}(?: (?:[A-Z]\\. ?)?${NAME_TOKEN}){0,2}|${INITIALS})`;
const TITLE = "(?:Dr|Drs|Doctor|Mr|Mrs|Ms|Miss|Mx|Prof|Professor|Sr|Rev|Fr)\\.?";
/** Words before a name in reports: who the findings were discussed with, who signed, relatives. */
const NAME_CONTEXT =
  "(?:discussed\\s+(?:with|by)|d/w|called\\s+(?:to|by)|paged|notified|informed|reviewed\\s+with|communicated\\s+(?:to|with)|conveyed\\s+to|relayed\\s+to|reported\\s+to|spoke\\s+(?:with|to)|signed\\s+by|dictated\\s+by|read\\s+by|transcribed\\s+by|verified\\s+by|approved\\s+by|interpreted\\s+by|seen\\s+by|attending|radiologist|resident|fellow|technologist|referring\\s+(?:physician|provider|doctor|clinician|MD)|ordering\\s+(?:physician|provider|doctor|clinician|MD)|physician|PCP|surgeon|patient(?:'s)?\\s+name|patient|pt|name|son|daughter|wife|husband|mother|father|brother|sister|spouse|partner|guardian|caregiver|next\\s+of\\s+kin|emergency\\s+contact|friend|neighbou?r|aunt|uncle|grandson|granddaughter|grandmother|grandfather|niece|nephew|my\\s+name\\s+is|named|called|i\\s+am|this\\s+is|i['’]m|call\\s+me|maiden\\s+name(?:\\s+is)?|says|said|directed\\s+by|written\\s+by|produced\\s+by|producer|author|dear|hello|hi|hey|thanks|thank\\s+you|beneficiary|guardian|change\\s+it\\s+to)";
const CREDENTIALS = '(?:MD|M\\.D\\.|DO|D\\.O\\.|RN|NP|PA-C|PhD|MBBS|FRCR|FRCPC|RRT|CRNA|MPH|DNP|RT\\(R\\))';
/** Nouns that make a capitalised word an eponym: "Kerley B lines", "Jones fracture". */
const EPONYM_NOUN =
  /^[\s-]*(?:[A-Z]\s+)?(?:lines?|fracture|sign|tube|catheter|hernia|disease|lymphoma|syndrome|malformation|classification|type|lesion|node|view|projection|position|maneuver|drain|stent|filter|valve|device|pouch|procedure|operation|anomaly|deformity|diverticulum|nodes?|ring)\b/i;
/** USPS street suffixes (Publication 28, appendix C1), full and abbreviated. */
const STREET_SUFFIX = `(?:${'Alley Aly Annex Anx Arcade Arc Avenue Ave Av Bayou Byu Beach Bch Bend Bnd Bluffs? Blf Bottom Btm Boulevard Blvd Branch Br Bridge Brg Brooks? Brk Burgs? Bg Bypass Byp Camp Cp Canyon Cyn Cape Cpe Causeway Cswy Centers? Ctr Circles? Cir Cliffs? Clf Club Clb Commons? Cmn Corners? Cor Course Crse Courts? Ct Coves? Cv Creek Crk Crescent Cres Crest Crst Crossing Xing Crossroads? Curve Curv Dale Dl Dam Dm Divide Dv Drives? Dr Estates? Est Expressway Expy Extensions? Ext Falls? Fls Ferry Fry Fields? Fld Flats? Flt Fords? Frd Forest Frst Forges? Frg Forks? Frk Fort Ft Freeway Fwy Gardens? Gdn Gateway Gtwy Glens? Gln Greens? Grn Groves? Grv Harbors? Hbr Haven Hvn Heights Hts Highway Hwy Hills? Hl Hollow Holw Inlet Inlt Islands? Is Isle Junctions? Jct Keys? Ky Knolls? Knl Lakes? Lk Land Landing Lndg Lane Ln Lights? Lgt Loaf Lf Locks? Lck Lodge Ldg Loop Mall Manors? Mnr Meadows? Mdw Mews Mills? Ml Mission Msn Motorway Mtwy Mount Mt Mountains? Mtn Neck Nck Orchard Orch Oval Overpass Opas Parks? Parkways? Pkwy Pass Passage Psge Path Pike Pines? Pne Places? Pl Plains? Pln Plaza Plz Points? Pt Ports? Prt Prairie Pr Radial Radl Ramp Ranch Rnch Rapids? Rpd Rest Rst Ridges? Rdg River Riv Roads? Rd Route Rte Row Rue Run Shoals? Shl Shores? Shr Skyway Skwy Springs? Spg Spurs? Squares? Sq Station Sta Stravenue Stra Streams? Strm Streets? St Summit Smt Terrace Ter Throughway Trwy Trace Trce Track Trak Trafficway Trfy Trail Trl Trailer Trlr Tunnel Tunl Turnpike Tpke Underpass Upas Unions? Un Valleys? Vly Viaduct Via Views? Vw Villages? Vlg Ville Vl Vista Vis Walks? Wall Ways? Wy Wells? Wl'.split(' ').join('|')})`;
const STATE_ABBR = Object.keys(US_STATES).join('|');
const STATE_NAME = Object.values(US_STATES).join('|');
const INSTITUTION_TYPE =
  "(?:Hospital|Medical\\s+Cent(?:er|re)|Medical\\s+Group|Health\\s+(?:System|Center|Centre|Care|Network|Sciences?)|Healthcare|Health|Clinic|Infirmary|Institute|University|College|Imaging(?:\\s+Cent(?:er|re))?|Radiology(?:\\s+(?:Associates|Group|Cent(?:er|re)))?|Associates|Nursing\\s+(?:Home|Facility)|Rehabilitation\\s+(?:Cent(?:er|re)|Hospital)|Hospice|Pharmacy|Laborator(?:y|ies)|Corporation|Corp\\.?|Inc\\.?|LLC|Ltd\\.?|PLC|Company|Group|Foundation|Partners|Cent(?:er|re)|Memorial|Sanatorium|School|Bank|Agency|Ministry|Practice|Co\\.?|Manor|Residence|Department\\s+of\\s+[A-Z][a-z]+|Technolog(?:y|ies)|Software|Capital|Finance|Financial|Consulting|Solutions|Systems|Analytics|Global|Holdings|Industries|Enterprises|Ventures|Insurance|Club)";
/** Leading words that alone do not name an institution ("Outside Hospital", "Community Hospital"). */
const GENERIC_PLACE = lower(
  'the a an outside our this that local community general regional county state city university medical health care emergency children childrens women womens veterans va new old main north south east west central hospital clinic center centre radiology imaging and of for at in from to with by nursing rehabilitation cancer heart cardiac surgical surgery pediatric trauma family primary urgent memorial department same another prior previous patient his her their st saint mount mt',
);
const MEASUREMENT_UNIT = /^\s*(?:mm|cm|m|km|ml|mL|cc|l|g|mg|mcg|kg|%|x|inch|inches|ft|degrees?|mmHg|hu|HU)\b/;

/** A regex source that matches its letters in either case, for context words next to case-sensitive names. */
function anyCase(source: string): string {
  return source.replace(/\\.|\[[^\]]*\]|[a-zA-Z]/g, (t) => (t.length === 1 ? `[${t.toLowerCase()}${t.toUpperCase()}]` : t));
}

function lower(words: string | string[]): Set<string> {
  return new Set((typeof words === 'string' ? words.split(/\s+/) : words).map((w) => w.toLowerCase()));
}

const words = (value: string) => value.split(/[\s,-]+/).filter(Boolean).map((w) => w.replace(/[.'’]+$|'s$|’s$/g, ''));
const isNotName = (w: string) => ACRONYMS.has(w) || NOT_NAMES.has(w.toLowerCase());
/** Words that cannot follow a title as a name ("Dr. The", "Mr. CT"). */
const notAfterTitle = (w: string) => ACRONYMS.has(w) || /^(?:the|a|an|and|or|of|on|at|in|to)$/i.test(w);
const digitCount = (value: string) => value.replace(/\D/g, '').length;
const validMonthDay = (month: number, day: number) => month >= 1 && month <= 12 && day >= 1 && day <= 31;
const followedBy = (match: RegExpExecArray, text: string, pattern: RegExp) => pattern.test(text.slice(match.index + match[0].length, match.index + match[0].length + 40));

/** A name after a context word: at least one token that is not a heading, acronym or common word. */
function plausibleName(value: string): boolean {
  const tokens = words(value);
  return tokens.length > 0 && !tokens.every(isNotName) && !isNotName(tokens[0]!);
}

/** A name without context must be in the census lists and not be an eponym or a plain word. */
function dictionaryName(first: string, last: string, match: RegExpExecArray, text: string): boolean {
  const f = first.toLowerCase();
  const l = last.toLowerCase();
  if (!FIRST_NAMES.has(f)) return false;
  if (isNotName(first) || isNotName(last) || EPONYMS.has(f) || EPONYMS.has(l)) return false;
  // "Richmond, Virginia", "Elsinore, MI": a state is not a given name.
  if (NOT_LOCATIONS.has(f) || NOT_LOCATIONS.has(l) || US_STATES[first] || US_STATES[last]) return false;
  if (followedBy(match, text, EPONYM_NOUN)) return false;
  if (!FIRST_NAMES.has(f)) return false;
  // A surname outside the census lists must at least not be an English word ("Helen Clear").
  return LAST_NAMES.has(l) || !ENGLISH_WORDS.has(l);
}

/** A word of any script: "Müller", "Ólafsdóttir", "Μεγάλη". */
const WORD = "\\p{L}[\\p{L}\\p{M}'’.-]*";
const CAP_WORD = "\\p{Lu}[\\p{L}\\p{M}'’-]*";
/**
 * What follows a street in an address, on the same line after a unit or on the next lines and
 * after commas: units, box numbers, a city (any case) and a postcode, a region code.
 * Each part must end a line, a comma part or the sentence, so a heading after it is not taken.
 */
const POSTCODE = '\\d{3,6}(?:[ -]\\d{2,4})?(?!\\d)';
const ADDRESS_PART = `(?:(?:Apt|Apartment|Suite|Ste|Unit|Box|Flat)\\.?\\s*#?\\s*\\d+[A-Za-z]?|${POSTCODE}|${CAP_WORD}(?:[ -]${CAP_WORD}){0,3}(?:[ \\t]+${POSTCODE})?(?=[ \\t]*(?:[,\\n]|\\.?$|\\.\\s)|[ \\t]+\\d))`;
const ADDRESS_TAIL = `(?:(?:[ \\t]*,[ \\t]*|[ \\t]*\\n(?:[ \\t]*\\n)?[ \\t>]*|[ \\t]+(?=\\p{Lu}{2}|\\d))${ADDRESS_PART}){0,5}`;
/**
 * Street words of other countries, before the street's name ("rue de la Paix", "ul. Długa", "Piazza Navona"), in lower case
 * or capitalised; those that are English words too (place, route, via) only capitalised.
 */
const STREET_WORD_BEFORE = `(?:${[
  ...'rue avenue av. boulevard bd. bd chemin allée impasse quai viale piazza corso largo calle avenida carrera paseo camino rua travessa praça estrada ul. ulica aleja al. náměstí nám. třída strada bulevardul calea odos leoforos'
    .split(' ')
    .map((w) => `[${w[0]}${w[0]!.toUpperCase()}]${w.slice(1).replace('.', '\\.')}`),
  'Place', 'Route', 'Via',
].join('|')})`;
const PARTICLE = '(?:de|du|des|la|le|les|del|della|delle|dei|di|da|do|dos|das|van|von|der|den|het|el|los|las|y|e)';

/** Keys in lower case, apostrophes and dots off: "O'Neill" -> "o'neill". */
const key = (w: string) => w.toLowerCase().replace(/[.]+$/, '');
/** A capitalised word that is no English word, heading, acronym, month or eponym: it may be a name or a place. */
function unknownWord(w: string): boolean {
  const k = key(w);
  return k.length >= 2 && !TITLES.test(w) && !ENGLISH_WORDS.has(k) && !NATIONALITIES.has(k) && !FOREIGN_WORDS.has(k) && !isNotName(w) && !EPONYMS.has(k) && !NOT_LOCATIONS.has(k) && !MONTH_WORDS.has(k);
}
const MONTH_WORDS = lower(
  'jan feb mar apr jun jul aug sep sept oct nov dec january february march april may june july august september october november december monday tuesday wednesday thursday friday saturday sunday',
);
const TITLES = /^(?:Dr|Drs|Doctor|Mr|Mrs|Ms|Mx|Miss|Prof|Professor|Sr|Rev|Fr)\.?$/i;
/** "North Dakota", "Rhode Island": words of a state's name, which Safe Harbor keeps. */
const STATE_NAME_AROUND = new RegExp(`\\b(?:${Object.values(US_STATES).filter((n) => n.includes(' ')).join('|')})\\b`, 'g');
function partOfStateName(match: RegExpExecArray, text: string): boolean {
  const from = Math.max(0, match.index - 20);
  for (const state of text.slice(from, match.index + match[0].length + 20).matchAll(STATE_NAME_AROUND)) {
    if (from + state.index < match.index + match[0].length && from + state.index + state[0].length > match.index) return true;
  }
  return false;
}
const NON_ASCII = /[^\x00-\x7f]/;
/** A given name or surname of the world lists (or the census), or a capitalised word in letters outside ASCII. */
const worldName = (w: string) => WORLD_NAMES.has(key(w)) || FIRST_NAMES.has(key(w)) || LAST_NAMES.has(key(w)) || NON_ASCII.test(w);

const m = (source: string, flags = 'g') => new RegExp(source, flags);
/** Rules whose every match holds a digit share this requirement (tested once per text). */
const DIGIT = /\d/;

/**
 * A capitalised word after "from", "in", "at" that is no English word, name, eponym or heading
 * ("a schoolteacher from Worcester"): a place the dictionaries do not know.
 */
function unknownPlace(value: string, match: RegExpExecArray, text: string): boolean {
  if (NOT_LOCATIONS.has(value.toLowerCase()) || followedBy(match, text, EPONYM_NOUN)) return false;
  return words(value).every((w) => {
    const key = w.toLowerCase();
    return !ENGLISH_WORDS.has(key) && !isNotName(w) && !EPONYMS.has(key) && !FIRST_NAMES.has(key) && !NOT_LOCATIONS.has(key) && !/^(?:Dr|Mr|Mrs|Ms)$/.test(w);
  });
}

/** A census given name alone ("said Gladys to Logan") when it is no English word, eponym or heading. */
function givenNameAlone(value: string, match: RegExpExecArray, text: string): boolean {
  const key = value.toLowerCase();
  if (!FIRST_NAMES.has(key)) return false;
  // "North Dakota", "South Carolina", "West Virginia": part of a state's name.
  if (/(?:North|South|West|New)\s$/.test(text.slice(Math.max(0, match.index - 6), match.index))) return false;
  return !ENGLISH_WORDS.has(key) && !isNotName(value) && !EPONYMS.has(key) && !NOT_LOCATIONS.has(key) && !US_STATES[value] && !followedBy(match, text, EPONYM_NOUN);
}

/** Every rule, in the order ties are broken (earlier wins when two rules find the same span). */
export const RULES: readonly Rule[] = [
  // ---------------------------------------------------------------- DATE
  { name: 'date_month_name_day', label: 'DATE', requires: DIGIT, pattern: m(`\\b${WEEKDAY}?${MONTH}\\.?\\s+\\d{1,2}${ORDINAL}?(?:,?\\s+(?:\\d{4}|'\\d{2}))?\\b(?!\\s*(?:mm|cm|mg|ml|%))`, 'gi'), accept: (v) => !/^(?:may|mar|jan|jun|dec|sept?|aug|oct|nov|apr|feb|jul)\b/.test(v) },
  { name: 'date_day_month_name', label: 'DATE', requires: DIGIT, pattern: m(`\\b${WEEKDAY}?\\d{1,2}${ORDINAL}?\\s+(?:of\\s+)?${MONTH}\\.?(?:,?\\s+\\d{4})?\\b`, 'gi'), accept: (v) => !/\s(?:may|mar|jan|jun|dec|sept?|aug|oct|nov|apr|feb|jul)\b/.test(v) },
  { name: 'date_month_name_year', label: 'DATE', requires: DIGIT, pattern: m(`\\b${MONTH}\\.?,?\\s+(?:of\\s+)?\\d{4}\\b`, 'gi'), accept: (v) => !/^(?:may|mar|jan|jun|dec|sept?|aug|oct|nov|apr|feb|jul)\b/.test(v) },
  { name: 'date_month_name_alone', label: 'DATE', pattern: /\b(?:January|February|March|April|June|July|August|September|October|November|December)\b/g },
  { name: 'date_numeric_mdy', label: 'DATE', requires: DIGIT, pattern: /\b(\d{1,2})([/.-])(\d{1,2})\2(\d{4}|\d{2})\b(?![.-]\d)/g, accept: (_v, mt) => validMonthDay(+mt[1]!, +mt[3]!) || validMonthDay(+mt[3]!, +mt[1]!) },
  { name: 'date_numeric_ymd', label: 'DATE', requires: DIGIT, pattern: /\b((?:19|20)\d{2})([/.-])(\d{1,2})\2(\d{1,2})\b/g, accept: (_v, mt) => validMonthDay(+mt[3]!, +mt[4]!) },
  { name: 'date_compact_ymd', label: 'DATE', requires: DIGIT, pattern: /\b(?:19|20)\d{2}(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])\b/g },
  { name: 'date_compact_dmy', label: 'DATE', requires: DIGIT, pattern: m(`\\b\\d{1,2}-?${MONTH}-?(?:\\d{4}|\\d{2})\\b`, 'gi'), accept: (v) => /[a-z]/i.test(v) && /^\d/.test(v) },
  { name: 'date_month_day', label: 'DATE', requires: DIGIT, pattern: /(?<![\d/.,-])(\d{1,2})\/(\d{1,2})(?![\d/]|\.\d)/g, accept: (_v, mt, text) => validMonthDay(+mt[1]!, +mt[2]!) && !followedBy(mt, text, MEASUREMENT_UNIT) },
  { name: 'date_month_year', label: 'DATE', requires: DIGIT, pattern: /(?<![\d/.-])(\d{1,2})[/-]((?:19|20)\d{2})\b(?![/-]\d)/g, accept: (_v, mt) => +mt[1]! >= 1 && +mt[1]! <= 12 },
  { name: 'date_ordinal_day', label: 'DATE', requires: DIGIT, pattern: m(`\\b(?:on|since|from|until|till|by|before|after|of|since)\\s+the\\s+(?<phi>\\d{1,2}${ORDINAL})\\b(?!${NOT_A_DAY})`, 'gid'), group: 'phi' },
  // ---------------------------------------------------------------- AGE (over 89 only)
  { name: 'age_years_old', label: 'AGE', requires: DIGIT, pattern: /\b(?<phi>9\d|1[0-4]\d)(?=[\s-]*(?:years?\b|yrs?\b|yo\b|y\/o|y\.o\.?|year-old|yr-old))/gd, group: 'phi' },
  { name: 'age_context', label: 'AGE', requires: DIGIT, pattern: /\b(?:aged?|age:|at\s+age|turn(?:s|ed)?|turning)\s*(?<phi>9\d|1[0-4]\d)\b/gid, group: 'phi' },
  { name: 'age_decade', label: 'AGE', requires: DIGIT, pattern: /\b(?:in\s+(?:his|her|their)\s+(?:early\s+|mid\s+|late\s+)?)(?<phi>9\d|1[0-4]\d)s\b/gid, group: 'phi' },
  { name: 'age_sex', label: 'AGE', requires: DIGIT, pattern: /\b(?<phi>9\d|1[0-4]\d)\s?(?:M|F|yo?[MF])\b/gd, group: 'phi' },
  // ---------------------------------------------------------------- ID
  { name: 'ssn', label: 'ID', requires: DIGIT, pattern: /\b\d{3}([- ])\d{2}\1\d{4}\b/g },
  { name: 'id_context', label: 'ID', requires: DIGIT, pattern: /\b(?:MRN|MR#|medical\s+record(?:\s+(?:number|no\.?|#))?|record\s+(?:number|no\.?|#)|unit\s+(?:number|no\.?)|accession(?:\s+(?:number|no\.?|#))?|acc(?:\.|#|t\.?)?|account(?:\s+(?:number|no\.?|#))?|health\s+plan(?:\s+(?:id|number|no\.?|beneficiary\s+number))?|beneficiary(?:\s+(?:id|number|no\.?))?|member(?:\s+(?:id|number|no\.?))?|policy(?:\s+(?:number|no\.?|#))?|insurance(?:\s+(?:id|number|no\.?))?|subscriber(?:\s+(?:id|number|no\.?))?|licen[cs]e(?:\s+(?:plate|number|no\.?|#))?|driver'?s?\s+licen[cs]e(?:\s+(?:number|no\.?|#))?|DL|serial(?:\s+(?:number|no\.?|#))?|S\/N|SN|device(?:\s+(?:id|serial|number|no\.?))|lot(?:\s+(?:number|no\.?|#))?|plate(?:\s+(?:number|no\.?|#))?|registration(?:\s+(?:number|no\.?|#))?|VIN|patient\s+(?:id|number|no\.?|#)|pt\s+(?:id|#|no\.?)|ID|identifier|case(?:\s+(?:number|no\.?|#))|study\s+(?:id|number|no\.?|#)|exam(?:ination)?\s+(?:id|number|no\.?|#)|order(?:\s+(?:number|no\.?|#))|requisition(?:\s+(?:number|no\.?|#))?|NPI|DEA|certificate(?:\s+(?:number|no\.?|#))?|card(?:\s+(?:number|no\.?|#))?|IBAN|badge(?:\s+(?:number|no\.?|#))?|employee\s+(?:id|number|no\.?)|passport(?:\s+(?:number|no\.?|#))?|tag(?:\s+(?:number|no\.?|#))|specimen(?:\s+(?:id|number|no\.?|#))?)(?![a-z])[\s:#.=-]*(?:is\s+|of\s+|was\s+)?(?<phi>[A-Za-z0-9](?:[A-Za-z0-9-]{1,}[A-Za-z0-9])?)\b/gid, group: 'phi', accept: (v) => digitCount(v) >= 3 && v.length >= 4 && !/^\d+(?:mm|cm|mg|ml)$/i.test(v) },
  { name: 'id_number_sign', label: 'ID', requires: '#', pattern: /#\s?(?<phi>[A-Z]{0,3}\d{4,}[A-Z0-9-]*)\b/gd, group: 'phi' },
  { name: 'card_grouped', label: 'ID', requires: DIGIT, pattern: /\b(?:\d{4}[\s-]){3}\d{1,4}\b|\b\d{4}[\s-]\d{6}[\s-]\d{4,5}\b/g },
  { name: 'iban', label: 'ID', requires: DIGIT, pattern: /\b[A-Z]{2}\d{2}(?:\s?[A-Z0-9]{4}){2,7}(?:\s?[A-Z0-9]{1,4})?\b/g },
  { name: 'long_number', label: 'ID', requires: DIGIT, pattern: /(?<![\d.,])\d{6,}(?![\d]|[.,]\d)/g },
  { name: 'alphanumeric_code', label: 'ID', requires: DIGIT, pattern: /\b(?=[A-Za-z0-9-]{6})[A-Za-z0-9]*\d[A-Za-z0-9]*(?:-[A-Za-z0-9]+)*\b/g, accept: (v) => /[A-Za-z]/.test(v) && digitCount(v) >= 4 && v.length >= 6 && !/^\d+(?:\.\d+)?(?:mm|cm|mg|ml|cc|kg|mcg|units|iu|u|msv|mgy|kvp?|mas|hz|ms|s|h|hrs?|mins?)$/i.test(v) && !/^(?:19|20)\d{2}s?$/.test(v) },
  // ---------------------------------------------------------------- CONTACT
  { name: 'email', label: 'CONTACT', requires: '@', pattern: /(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}/g },
  { name: 'url', label: 'CONTACT', requires: /:\/\/|www\./i, pattern: /\b(?:https?:\/\/|ftp:\/\/|www\.)[^\s<>"'\]]+[^\s<>"'\].,;:!?)]/gi },
  // Top-level domains that are also words ("ago.no", "XXXX.In") are left to the email and URL rules.
  { name: 'domain_name', label: 'CONTACT', requires: /\.(?:com|org|net|edu|gov|mil|io|info|biz|uk|ca|fr|nl|se|dk|fi|hu|pl|au|nz|jp|cn|br|ru|ch|ie|gr|cz|health)\b/, pattern: /\b(?:[A-Za-z0-9][A-Za-z0-9-]*\.)+(?:com|org|net|edu|gov|mil|io|info|biz|uk|ca|fr|nl|se|dk|fi|hu|pl|au|nz|jp|cn|br|ru|ch|ie|gr|cz|health)\b(?:\/[^\s]*[^\s.,;:!?)])?/g },
  { name: 'ipv4', label: 'CONTACT', requires: /\d\.\d{1,3}\.\d/, pattern: /(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?![\d.]*\d)/g },
  { name: 'ipv6', label: 'CONTACT', requires: ':', pattern: /(?<![\w:])(?=[0-9a-f]{1,4}::?[0-9a-f]{0,4}:)(?:(?:[0-9a-f]{1,4}:){7}[0-9a-f]{1,4}\b|(?:[0-9a-f]{1,4}:){1,6}:(?:[0-9a-f]{1,4}(?::[0-9a-f]{1,4}){0,5})?(?![\w:]))/gi, accept: (v) => /[a-f]/i.test(v) || v.includes('::') },
  { name: 'phone_us', label: 'CONTACT', requires: DIGIT, pattern: /(?<![\w.+-])(?:\+?1[\s.-]?)?(?:\(\d{3}\)\s?|\d{3}[\s.-])\d{3}[\s.-]\d{4}\b(?:\s*(?:x|ext\.?|extension)\s*\d{1,6})?/gi },
  { name: 'phone_international', label: 'CONTACT', requires: DIGIT, pattern: /(?<![\w.])(?:\+|00)\d{1,3}(?:[\s.-]?\(?\d{1,4}\)?){2,6}(?![\w])/g, accept: (v) => digitCount(v) >= 7 },
  { name: 'phone_context', label: 'CONTACT', requires: DIGIT, pattern: /\b(?:phone|ph|tel|telephone|fax|facsimile|pager|pgr|beeper|bleep|cell|mobile|cellphone|call(?:ed)?(?:\s+(?:me|him|her|them|us))?(?:\s+(?:at|on))?|contact(?:ed)?\s+(?:at|on)|reach(?:ed)?\s+(?:me\s+)?(?:at|on)|answering\s+at|dial|number(?:\s+is)?)\b[.:#\s]*(?:no\.?|number|#)?[.:\s]*(?<phi>\+?\(?\d[\d\s().-]{2,18}\d)(?![\d.]*\d)/gid, group: 'phi', accept: (v, mt, text) => digitCount(v) >= 4 && !/\d\.\d/.test(v) && !followedBy(mt, text, MEASUREMENT_UNIT) },
  { name: 'phone_extension', label: 'CONTACT', requires: DIGIT, pattern: /\b(?:ext|extension|x)\.?\s?(?<phi>\d{3,6})\b/gid, group: 'phi', accept: (_v, mt, text) => !followedBy(mt, text, MEASUREMENT_UNIT) && !/\d\s*$/.test(text.slice(Math.max(0, mt.index - 4), mt.index)) },
  { name: 'phone_grouped_digits', label: 'CONTACT', requires: DIGIT, pattern: /(?<![\w.,/-])\(?\d{2,4}\)?(?:[ .-]\d{2,4}){2,4}(?![\w.,/-]*\d)/g, accept: (v, mt, text) => digitCount(v) >= 7 && !followedBy(mt, text, MEASUREMENT_UNIT) },
  // ---------------------------------------------------------------- NAME
  { name: 'name_after_title', label: 'NAME', pattern: m(`\\b${TITLE}[ \\t]+(?<phi>${NAME_SEQUENCE})`, 'gd'), group: 'phi', accept: (v) => !notAfterTitle(words(v)[0]!) },
  { name: 'name_with_credentials', label: 'NAME', pattern: m(`\\b(?<phi>(?:${INITIALS})?${NAME_TOKEN}(?: (?:[A-Z]\\. ?)?${NAME_TOKEN}){0,2}),? ${CREDENTIALS}(?![\\w])`, 'gd'), group: 'phi', accept: plausibleName },
  { name: 'name_after_context', label: 'NAME', pattern: m(`\\b${anyCase(NAME_CONTEXT)}\\b[ \\t]*[:,-]?[ \\t]*(?:${anyCase('the\\s+(?:patient|radiologist|resident|attending|physician|technologist|nurse)')}[ \\t]*,?[ \\t]*)?(?:${TITLE}[ \\t]+)?(?<phi>${NAME_SEQUENCE})`, 'gd'), group: 'phi', accept: (v) => /^[A-Z]/.test(v) && plausibleName(v) && !/\bI['’]m\b/.test(v) },
  { name: 'name_initial_surname', label: 'NAME', pattern: /(?<![\w.])(?:[A-Z]\.\s?){1,2}(?<last>[A-Z][a-z'’]+(?:-[A-Z][a-z'’]+)?)\b/g, accept: (_v, mt, text) => !isNotName(mt.groups!.last!) && !EPONYMS.has(mt.groups!.last!.toLowerCase()) && (LAST_NAMES.has(mt.groups!.last!.toLowerCase()) || !ENGLISH_WORDS.has(mt.groups!.last!.toLowerCase())) && !followedBy(mt, text, EPONYM_NOUN) },
  { name: 'name_last_comma_first', label: 'NAME', pattern: /\b(?<last>[A-Z][a-zA-Z'’-]+), ?(?<first>[A-Z][a-zA-Z'’-]+)(?: [A-Z]\.?(?![a-z]))?/g, accept: (_v, mt, text) => dictionaryName(mt.groups!.first!, mt.groups!.last!, mt, text) },
  { name: 'name_first_last', label: 'NAME', pattern: /\b(?<first>[A-Z][a-z'’]+|[A-Z]{2,}) (?:[A-Z]\.? )?(?<last>[A-Z][a-zA-Z'’]*(?:-[A-Z][a-zA-Z'’]*)?[a-zA-Z])\b/g, accept: (_v, mt, text) => dictionaryName(mt.groups!.first!, mt.groups!.last!, mt, text) },
  { name: 'name_given_alone', label: 'NAME', pattern: m(`(?<![${LETTER}'’-])[${UPPER}][a-zà-öø-ÿā-ž]{2,}(?![${LETTER}'’-])`, 'g'), accept: (v, mt, text) => givenNameAlone(v, mt, text) },
  // ---------------------------------------------------------------- LOCATION
  { name: 'street_address', label: 'LOCATION', requires: DIGIT, pattern: m(`(?:\\b(?:\\d{1,6}[ \\t])?\\d{1,6}[A-Za-z]?\\s+(?:[NSEW]\\.?\\s+)?(?:(?:[A-Z][A-Za-z'’.-]*|\\d{1,3}(?:st|nd|rd|th))\\s+){1,4}${STREET_SUFFIX}\\b\\.?|\\b\\d{1,6} (?:[NSEW]\\.? )?Broadway\\b)(?:,?\\s*(?:Apt|Apartment|Suite|Ste|Unit|Room|Rm|Fl|Floor|#)\\.?\\s*[A-Za-z0-9-]+)?`, 'g') },
  { name: 'street_international', label: 'LOCATION', requires: DIGIT, pattern: m(`\\b(?:ul\\.\\s+|rue\\s+|via\\s+|calle\\s+|avenida\\s+|rua\\s+)?[${UPPER}][${LETTER}]+(?:katu|tie|vägen|gatan|gata|gade|vej|veien|vegen|stien|stræde|straße|strasse|straat|weg|laan|gasse|platz|utca|tänav|iela|gatvė)\\s+\\d+[A-Za-z]?\\b(?:,?\\s*(?:Apt|Apartment|Suite|Ste|Unit)\\.?\\s*\\d+)?`, 'g') },
  { name: 'address_unit', label: 'LOCATION', requires: DIGIT, pattern: /\b(?:Apt|Apartment|Suite|Ste)\.?\s*#?\s*\d+[A-Z]?\b/g },
  { name: 'po_box', label: 'LOCATION', requires: DIGIT, pattern: /\b(?:P\.?\s?O\.?\s?Box|Post\s+Office\s+Box)\s+\d+\b/gi },
  { name: 'city_before_state', label: 'LOCATION', pattern: m(`\\b(?<phi>[A-Z][a-z]+(?:[A-Z][a-z]+)?(?:[ -][A-Z][a-z]+(?:[A-Z][a-z]+)?){0,2}),\\s+(?:${STATE_ABBR}|${STATE_NAME})\\b`, 'gd'), group: 'phi', accept: (v) => !NOT_LOCATIONS.has(v.toLowerCase()) && !isNotName(v) },
  { name: 'zip_after_state', label: 'LOCATION', requires: DIGIT, pattern: m(`\\b(?:${STATE_ABBR}|${STATE_NAME}),?\\s+(?<phi>\\d{5}(?:-\\d{4})?)\\b`, 'gd'), group: 'phi' },
  { name: 'zip_context', label: 'LOCATION', requires: DIGIT, pattern: /\b(?:zip(?:\s*code)?|postal\s+code|postcode)[\s:#]*(?:is\s+)?(?<phi>\d{5}(?:-\d{4})?|[A-Z]\d[A-Z]\s?\d[A-Z]\d)\b/gid, group: 'phi' },
  { name: 'institution', label: 'LOCATION', requires: m(`\\b${INSTITUTION_TYPE}\\b`, ''), pattern: m(`(?<phi>(?:\\b(?:St\\.?|Saint|Mount|Mt\\.?)\\s+)?(?:\\b[A-Z][A-Za-z'’.&-]*\\s+(?:(?:of|and|&|the|for)\\s+)?){1,5}${INSTITUTION_TYPE}(?:\\s+(?:of|at)\\s+(?:[A-Z][A-Za-z'’-]+\\s?){1,3})?)\\b`, 'gd'), group: 'phi', accept: (v) => words(v).some((w) => !GENERIC_PLACE.has(w.toLowerCase()) && !/^(?:Hospital|Medical|Center|Centre|Clinic|Health|Healthcare|Institute|University|College|Imaging|Radiology|Associates|Group|Foundation|Partners|Inc|LLC|Ltd|Corp|Company|Memorial|School|Bank|Agency|Corporation|PLC|Ministry|Laboratory|Laboratories|Pharmacy|Hospice|Infirmary|Sanatorium|Nursing|Home|Facility|Rehabilitation|System|Network|Care|Sciences?|Department)$/i.test(w)) },
  { name: 'institution_of', label: 'LOCATION', requires: / of /, pattern: /\b(?:University|Hospital|College|Institute|Clinic|Medical\s+Center|Bank|Ministry|Department)\s+of\s+(?:the\s+)?(?:[A-Z][A-Za-z'’-]+\s?){1,4}/g },
  { name: 'place_unknown_word', label: 'LOCATION', pattern: /\b(?:from|in|at|near)\s+(?<phi>[A-Z][a-z]+(?:[ -][A-Z][a-z]+)?)\b/gd, group: 'phi', accept: (v, mt, text) => unknownPlace(v, mt, text) },
  { name: 'ward', label: 'LOCATION', requires: /\b(?:Ward|Wing|Pavilion|Tower|Building|Bldg)\b/, pattern: /\b(?:Ward|Wing|Pavilion|Tower|Building|Bldg\.?)\s+[A-Z0-9][A-Za-z0-9-]*\b|\b[A-Z][a-z]+(?:\s+[A-Z][a-z]+)?\s+(?:Ward|Wing|Pavilion|Tower|Building)\b/g, accept: (v) => /\d/.test(v) || words(v).some((w) => !GENERIC_PLACE.has(w.toLowerCase()) && !/^(?:ward|wing|pavilion|tower|building|bldg|room|rm|bed|intensive|coronary|neonatal|surgical|medical|step|down|observation|psychiatric|oncology|dialysis|recovery|maternity|labor|delivery|burn|isolation|private|single|double|general|acute|long|short|stay|day|night)$/i.test(w)) },
  { name: 'place_after_context', label: 'LOCATION', pattern: m(`\\b${anyCase(String.raw`(?:transferred\s+(?:here\s+)?(?:from|to)|transfer\s+from|lives\s+in|living\s+in|resides\s+in|resident\s+of|born\s+in|visiting\s+from|moved\s+(?:here\s+)?(?:from|to)|travell?(?:ed|ing)?\s+(?:to|from)|returned\s+from|flew\s+(?:in\s+)?from|home\s+in|from\s+the\s+town\s+of|city\s+of|town\s+of|village\s+of|county\s+of|located\s+in|arrived\s+(?:at|in)|address(?:\s+is)?:?|hometown\s+(?:of|is))\s+`)}(?<phi>(?:St\\.\\s)?[A-Z][a-zA-Z'’-]+(?:[\\s-](?:[A-Z][a-zA-Z'’-]+)){0,3})`, 'gd'), group: 'phi', accept: (v) => !NOT_LOCATIONS.has(v.toLowerCase()) && !words(v).every(isNotName) },
  // ---------------------------------------------------------------- outside the US and outside reports (pii-synth)
  // "6750 Koskikatu 25", "376 Rákóczi út 13", "06111 Μεγάλη Άμμος 198": house number, street, number.
  { name: 'street_number_name_number', label: 'LOCATION', requires: DIGIT, pattern: m(`(?=\\d)(?<![\\p{L}\\p{N}.,/:-])\\d{1,6}(?:[ \\t]\\d{1,5})?[ \\t]+${CAP_WORD}(?:[ \\t]+${WORD}){0,4}?[ \\t]+\\d{1,5}[A-Za-z]?(?![\\p{L}\\p{N}]|[.,/:]\\d)${ADDRESS_TAIL}`, 'gu'), accept: (v, mt, text) => !followedBy(mt, text, MEASUREMENT_UNIT) && v.match(/\p{L}[\p{L}\p{M}'’-]*/gu)!.some(unknownWord) },
  // "Arenales 9462", "Præstevænget 15", "Piazza Rezzonico 35": a street that is no English word, then its number.
  { name: 'street_name_number', label: 'LOCATION', requires: DIGIT, pattern: m(`(?=\\p{Lu})(?<![\\p{L}\\p{N}'’-])(?:${CAP_WORD}[ \\t]+){0,2}(?<street>\\p{Lu}\\p{Ll}[\\p{Ll}\\p{M}'’-]+)[ \\t]+\\d{1,5}[A-Za-z]?\\.?(?![\\p{L}\\p{N}]|[.,/:-]\\d)${ADDRESS_TAIL}`, 'gu'), accept: (_v, mt, text) => unknownWord(mt.groups!.street!) && !FIRST_NAMES.has(key(mt.groups!.street!)) && !LAST_NAMES.has(key(mt.groups!.street!)) && !followedBy(mt, text, MEASUREMENT_UNIT) },
  // "33 avenue de Provence", "Rua Cyro Schmutzer Franco 1213", "ul. Długa 5".
  { name: 'street_word_before', label: 'LOCATION', requires: m(`\\b${STREET_WORD_BEFORE}\\s`, ''), pattern: m(`(?<![\\p{L}])(?:\\d{1,6}[ \\t]+)?${STREET_WORD_BEFORE}[ \\t]+(?:${PARTICLE}[ \\t]+|${CAP_WORD}[ \\t]*){1,5}(?:\\d{1,5}[A-Za-z]?)?${ADDRESS_TAIL}`, 'gu'), accept: (v) => /\d/.test(v) || /^\d|^\p{Lu}/u.test(v) },
  // US military addresses: "PSC 0729, Box 5797 APO AP 96854", "USNS Bergman FPO AP 93757".
  { name: 'military_address', label: 'LOCATION', requires: /\b[ADF]PO\b/, pattern: /\b(?:(?:PSC|Unit|CMR|USNS|USNV|USS|USCGC)\s+[\p{L}\d]+(?:,?\s+Box\s+\d+)?\s*)?(?:APO|FPO|DPO)\s+(?:AA|AE|AP)\s+\d{5}\b/gu },
  // Apartment or suite and what follows: "Apt. 087 SAINT-PRIEST", "Suite 979, Brú".
  { name: 'address_unit_tail', label: 'LOCATION', requires: /\b(?:Apt|Apartment|Suite|Ste|Box)\b/, pattern: m(`\\b(?:Apt|Apartment|Suite|Ste|Box)\\.?\\s*#?\\s*\\d+[A-Za-z]?${ADDRESS_TAIL}`, 'gu') },
  // Postcodes of other countries after a context: "ZIP: 8592", "postal code 53-320", "zip code is 90010-170".
  { name: 'postcode_context', label: 'LOCATION', requires: /zip|postal|post\s*code|PLZ|CEP/i, pattern: /\b(?:zip(?:\s*code)?|postal\s*code|postcode|post\s+code|PLZ|CEP)[\s:#]*(?:is\s+)?(?<phi>\d{3,5}(?:[ -]\d{2,4})?|\d{2}-\d{3}|[A-Z]{1,2}\d[A-Z\d]?\s?\d[A-Z]{2})\b/gidu, group: 'phi' },
  // Names of any country: two capitalised words, neither an English word, one a known name or in letters outside ASCII.
  { name: 'name_world_pair', label: 'NAME', pattern: m(`(?=\\p{Lu})(?<![\\p{L}\\p{M}'’-])(?<first>\\p{Lu}[\\p{Ll}\\p{M}'’]+(?:-\\p{Lu}[\\p{Ll}\\p{M}'’]+)?)[ \\t]+(?:\\p{Lu}\\.?[ \\t]+)?(?<last>\\p{Lu}[\\p{Ll}\\p{M}'’]+(?:-\\p{Lu}[\\p{Ll}\\p{M}'’]+)?)(?![\\p{L}\\p{M}'’-])`, 'gu'), accept: (_v, mt, text) => unknownWord(mt.groups!.first!) && unknownWord(mt.groups!.last!) && (worldName(mt.groups!.first!) || worldName(mt.groups!.last!)) && !followedBy(mt, text, EPONYM_NOUN) },
  // One capitalised word: a city of the world lists ("Zoetermeer") or a given name or surname of them ("Tomomi", "Tómas"),
  // when no English word, eponym or heading; or a census given name that is also a word, in the middle of a sentence
  // ("named him Frank", "leave me Brad"). One rule for all three, as they read the same words.
  { name: 'world_name_or_city', label: 'NAME', pattern: m(`(?=\\p{Lu})(?<![\\p{L}\\p{M}'’-])\\p{Lu}[\\p{L}\\p{M}'’-]{2,}(?![\\p{L}\\p{M}'’-])`, 'gu'), accept: (v, mt, text) => midSentenceName(v, mt, text) || (!ENGLISH_WORDS.has(v.toLowerCase()) && (worldCity(v, mt, text) ? 'LOCATION' : worldNameAlone(v, mt, text))) },
  // A lower-case name after a lower-case title: "mr. elliott", "dr. seiler".
  { name: 'name_after_lowercase_title', label: 'NAME', requires: /\b(?:mr|mrs|ms|dr|miss)\b/, pattern: /\b(?:mr|mrs|ms|dr|miss)\.?[ \t]+(?<phi>\p{Ll}[\p{Ll}\p{M}'’-]+)/gdu, group: 'phi', accept: (v) => !ENGLISH_WORDS.has(v) || FIRST_NAMES.has(v) || LAST_NAMES.has(v) },
  // Cities and towns of the world of several words (GeoNames, 1,000 people or more): "Los Angeles", "Porto Alegre".
  { name: 'city_world_words', label: 'LOCATION', pattern: m(`(?=\\p{Lu})(?<![\\p{L}\\p{M}'’-])\\p{Lu}[\\p{L}\\p{M}'’-]+(?:[ \\t]+(?:${PARTICLE}[ \\t]+)?\\p{Lu}[\\p{L}\\p{M}'’-]+){1,2}(?![\\p{L}\\p{M}'’-])`, 'gu'), accept: worldCity },
  // A word in capitals outside ASCII ("ΛΕΥΚΩΣΙΑ", "ÖVERTURINGEN"): a place or a name, never clinical English.
  { name: 'capitals_non_ascii', label: 'LOCATION', requires: /[^\x00-\x7f]/, pattern: /(?<![\p{L}\p{M}])(?=\p{Lu}*[^\x00-\x7f])\p{Lu}[\p{Lu}\p{M}'’-]{2,}(?:[ \t]+\p{Lu}[\p{Lu}\p{M}'’-]{1,}){0,2}(?![\p{L}\p{M}])/gu },
  // Companies: "Weeks-Rivas", "Barnett, Melton and Garcia", "Thomas and Sons".
  { name: 'company_surnames', label: 'LOCATION', requires: /[a-z]-[A-Z]|[a-z],? and [A-Z]|[a-z] (?:and|&) Sons/, pattern: /\b(?:[A-Z][a-z]+-[A-Z][a-z]+|[A-Z][a-z]+, [A-Z][a-z]+,? and [A-Z][a-z]+|[A-Z][a-z]+ (?:and|&) Sons)\b/g, accept: (v, mt, text) => /Sons$/.test(v) || (v.split(/, | and |-/).every((w) => LAST_NAMES.has(w.toLowerCase()) && !EPONYMS.has(w.toLowerCase())) && !EPONYMS.has(v.toLowerCase()) && !followedBy(mt, text, EPONYM_NOUN)) },
  // An employer after a context: "I work for Thinknum", "employed by Deloitte".
  { name: 'employer_context', label: 'LOCATION', requires: /work|employ|job at|hired|joined/i, pattern: m(`\\b${anyCase('(?:work(?:s|ed|ing)?\\s+(?:for|at)|employed\\s+(?:by|at)|employer(?:\\s+is)?:?|job\\s+at|hired\\s+by|joined)')}[ \\t]+(?:the[ \\t]+)?(?<phi>\\p{Lu}[\\p{L}\\p{M}'’&.-]*(?:[ \\t]+(?:of[ \\t]+|and[ \\t]+|&[ \\t]+)?\\p{Lu}[\\p{L}\\p{M}'’&.-]*){0,4})`, 'gdu'), group: 'phi', accept: (v) => plausibleName(v) && !NOT_LOCATIONS.has(v.toLowerCase()) },
  // "the corner of 76 Boulevard de Normandie and Eriksson Bridge": both streets.
  { name: 'street_corner', label: 'LOCATION', requires: /corner of/i, pattern: m(`\\b(?:the\\s+)?${anyCase('corner')}\\s+of\\s+(?:[\\p{L}\\p{N}][\\p{L}\\p{N}\\p{M}'’.-]*\\s+){1,6}?(?:and|&)\\s+(?:${CAP_WORD}|\\d+)(?:[ \\t]+(?:${CAP_WORD}|\\d+)\\.?){0,3}`, 'gu') },
  // A speaker in a dialogue or a chat: "Ubul: What a wife.", "Halldór: Remember me?".
  { name: 'name_speaker', label: 'NAME', requires: /\p{Ll}:[ \t]/u, pattern: m(`(?<=^|\\n)[ \\t>]*(?<phi>\\p{Lu}[\\p{Ll}\\p{M}'’]+):[ \\t]+\\S`, 'gdu'), group: 'phi', accept: (v) => (FIRST_NAMES.has(key(v)) || unknownWord(v)) && !isNotName(v) && !EPONYMS.has(key(v)) },
  // Texts written without capitals lose the case cue: there, census given names that are no English word ("my name is lena andersson"),
  // cities of the world lists that are no English word ("we returned to kiel"), and house number, street, number ("255 hersnapvej 18").
  { name: 'name_lower_case_text', label: 'NAME', unless: /\p{Lu}/u, pattern: /(?<![\p{L}\p{M}'’-])(?<first>\p{Ll}{3,})(?:[ \t]+(?:\p{Ll}[ \t]+)?(?<last>\p{Ll}[\p{Ll}\p{M}'’-]+))?(?![\p{L}\p{M}'’-])/gu, accept: (_v, mt) => lowerCaseName(mt.groups!.first!, mt.groups!.last) },
  { name: 'city_lower_case_text', label: 'LOCATION', unless: /\p{Lu}/u, pattern: /(?<![\p{L}\p{M}'’-])\p{Ll}{3,}(?![\p{L}\p{M}'’-])/gu, accept: lowerCaseCity },
  { name: 'street_lower_case_text', label: 'LOCATION', unless: /\p{Lu}/u, requires: DIGIT, pattern: /(?=\d)(?<![\p{L}\p{N}.,\/:-])\d{1,6}(?:[ \t]\d{1,5})?[ \t]+\p{Ll}[\p{Ll}\p{M}'’.-]*(?:[ \t]+\p{Ll}[\p{Ll}\p{M}'’.-]*){0,3}?[ \t]+\d{1,5}(?![\p{L}\p{N}]|[.,\/:]\d)/gu, accept: (v, mt, text) => !followedBy(mt, text, MEASUREMENT_UNIT) && v.match(/\p{L}[\p{L}\p{M}'’-]*/gu)!.some((w) => !ENGLISH_WORDS.has(w) && !FOREIGN_WORDS.has(w)) },
];

/** A city of the world lists ("Zoetermeer", "Los Angeles") when no English word, nor part of a state's name ("South Carolina"). */
function worldCity(value: string, match: RegExpExecArray, text: string): boolean {
  const k = value.toLowerCase();
  if (/(?:North|South|West|New|Rhode)\s$/.test(text.slice(Math.max(0, match.index - 6), match.index))) return false;
  if (!WORLD_CITIES.has(k)) return false;
  if (value.length < 3 || US_STATES[value] || ENGLISH_WORDS.has(k) || NOT_LOCATIONS.has(k) || EPONYMS.has(k) || isNotName(value) || ACRONYMS.has(value) || partOfStateName(match, text)) return false;
  return value.split(/\s+/).some((w) => unknownWord(w));
}

/** Mid-sentence census given names that are words too (surnames that are words are too many: White, Day, Love); never clinical words, eponyms or places. */
function midSentenceName(value: string, match: RegExpExecArray, text: string): boolean {
  const k = key(value);
  if (!FIRST_NAMES.has(k) || !/^\p{Lu}\p{Ll}+$/u.test(value) || !/\p{Ll}[,;]?[ \t]+(?:and[ \t]+|&[ \t]+)?$/u.test(text.slice(Math.max(0, match.index - 8), match.index))) return false;
  if (TITLE_WORDS.has(k) || partOfStateName(match, text) || isNotName(value) || EPONYMS.has(k) || NOT_LOCATIONS.has(k) || MONTH_WORDS.has(k) || US_STATES[value]) return false;
  // "the Royal Navy", "Princess Diana": a title or a name's first word, not a name alone.
  if (/\b(?:the|a|an|of)\s+$/i.test(text.slice(Math.max(0, match.index - 5), match.index)) || followedBy(match, text, /^\s+\p{Lu}/u)) return false;
  return !NATIONALITIES.has(k) && !followedBy(match, text, EPONYM_NOUN);
}

/** Census given names that are mostly titles or words when capitalised mid-sentence. */
const TITLE_WORDS = lower('royal prince princess king queen lord lady duke earl baron love joy faith hope grace');

/** In a text without any capital letter, a city of the world lists that is no English word, name or function word. */
function lowerCaseCity(word: string): boolean {
  return WORLD_CITIES.has(word) && !ENGLISH_WORDS.has(word) && !FOREIGN_WORDS.has(word) && !FIRST_NAMES.has(word) && !NOT_LOCATIONS.has(word) && !NOT_NAMES.has(word);
}

/** In a text without any capital letter (the rule's `unless`), a census given name that is no English word, with the next word when a surname. */
function lowerCaseName(first: string, last: string | undefined): boolean {
  return FIRST_NAMES.has(first) && !ENGLISH_WORDS.has(first) && !EPONYMS.has(first) && !NOT_NAMES.has(first) && (last === undefined || !ENGLISH_WORDS.has(last) || LAST_NAMES.has(last));
}

/** A given name or surname of the world lists, or a word in letters outside ASCII, alone: "Tomomi is from ...". */
function worldNameAlone(value: string, match: RegExpExecArray, text: string): boolean {
  if (!/^\p{Lu}[\p{Ll}\p{M}'’]+$/u.test(value) || !unknownWord(value) || !(WORLD_NAMES.has(key(value)) || NON_ASCII.test(value))) return false;
  return !WORLD_CITIES.has(key(value)) && !partOfStateName(match, text) && !followedBy(match, text, EPONYM_NOUN);
}
