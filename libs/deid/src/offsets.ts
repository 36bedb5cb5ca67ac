/**
 * Offsets in the contract and in gold files are Unicode code points; JavaScript strings index
 * UTF-16 code units. These convert between the two for one text.
 */
export function utf16ToCodePoint(text: string): (index: number) => number {
  if (!/[\uD800-\uDFFF]/.test(text)) return (index) => index;
  const table = prefixCounts(text);
  return (index) => index - table[index]!;
}

export function codePointToUtf16(text: string): (index: number) => number {
  if (!/[\uD800-\uDFFF]/.test(text)) return (index) => index;
  const positions: number[] = [];
  let i = 0;
  for (const char of text) {
    positions.push(i);
    i += char.length;
  }
  positions.push(i);
  return (index) => positions[Math.min(index, positions.length - 1)]!;
}

/** For every UTF-16 index, how many low surrogates come before it. */
function prefixCounts(text: string): Uint32Array {
  const table = new Uint32Array(text.length + 1);
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    table[i + 1] = table[i]! + (code >= 0xdc00 && code <= 0xdfff && i > 0 ? 1 : 0);
  }
  return table;
}
