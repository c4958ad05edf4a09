/**
 * A small, strict JSON scanner used alongside JSON.parse for two things
 * JSON.parse does not give us:
 *
 * 1. Line numbers: where each array element / property value starts, so a
 *    rejected entry can be reported as "line 57".
 * 2. A safe error location: V8's JSON.parse message quotes a snippet of the
 *    input, which could be a recovery password. We report only
 *    "line X, column Y" computed here.
 *
 * It validates the full RFC 8259 grammar but builds only a "position tree"
 * (line numbers, no values), limited to a few levels deep to bound memory.
 * It is iterative (an explicit stack), so deeply nested input cannot overflow
 * the call stack.
 */

export interface JsonPos {
  /** 1-based line where this value starts. */
  line: number;
  /** For arrays: positions of the elements (only within the depth limit). */
  items?: JsonPos[];
  /** For objects: positions of property values by key (first occurrence wins). */
  props?: Map<string, JsonPos>;
}

export type JsonScanResult = { ok: true; root: JsonPos } | { ok: false; line: number; column: number; problem: string };

/** Depth (root = 0) down to which positions are recorded. */
const MAX_POS_DEPTH = 4;

interface Frame {
  kind: 'array' | 'object';
  pos: JsonPos | null;
  /** array: expecting 'value-or-end' | 'value' | 'comma-or-end'; object: 'key-or-end' | 'key' | 'colon' | 'value' | 'comma-or-end' */
  state: string;
  key: string;
}

const isWs = (c: number): boolean => c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;
const isDigit = (c: number): boolean => c >= 0x30 && c <= 0x39;

export function scanJson(text: string): JsonScanResult {
  let i = 0;
  let line = 1;
  const n = text.length;
  const stack: Frame[] = [];
  // A box rather than a `let`: it is assigned inside a closure, which
  // TypeScript's control-flow narrowing does not see.
  const rootBox: { pos: JsonPos | null } = { pos: null };

  const error = (problem: string, at: number = i): JsonScanResult => {
    // Recompute line/column for `at` (which may precede i inside a token).
    let l = 1;
    let ls = 0;
    for (let k = 0; k < at && k < n; k++) {
      if (text.charCodeAt(k) === 0x0a) {
        l++;
        ls = k + 1;
      }
    }
    return { ok: false, line: l, column: at - ls + 1, problem };
  };

  const skipWs = (): void => {
    while (i < n) {
      const c = text.charCodeAt(i);
      if (!isWs(c)) break;
      if (c === 0x0a) line++;
      i++;
    }
  };

  /** Scan a string starting at text[i] === '"'; returns end index (after the quote) or an error. */
  const scanString = (): number | JsonScanResult => {
    let k = i + 1;
    while (k < n) {
      const c = text.charCodeAt(k);
      if (c === 0x22) return k + 1;
      if (c < 0x20) return error('a control character or line break inside a string', k);
      if (c === 0x5c) {
        const e = text.charCodeAt(k + 1);
        if (e === 0x75) {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(k + 2, k + 6))) {
            return error('an invalid \\u escape in a string', k);
          }
          k += 6;
          continue;
        }
        // " \ / b f n r t
        if (![0x22, 0x5c, 0x2f, 0x62, 0x66, 0x6e, 0x72, 0x74].includes(e)) {
          return error('an invalid escape in a string', k);
        }
        k += 2;
        continue;
      }
      k++;
    }
    return error('a string that is never closed', i);
  };

  const scanNumber = (): number | JsonScanResult => {
    let k = i;
    if (text.charCodeAt(k) === 0x2d) k++;
    if (text.charCodeAt(k) === 0x30) {
      k++;
    } else if (isDigit(text.charCodeAt(k))) {
      while (isDigit(text.charCodeAt(k))) k++;
    } else {
      return error('an invalid number', i);
    }
    if (text.charCodeAt(k) === 0x2e) {
      k++;
      if (!isDigit(text.charCodeAt(k))) return error('an invalid number', i);
      while (isDigit(text.charCodeAt(k))) k++;
    }
    const e = text.charCodeAt(k);
    if (e === 0x65 || e === 0x45) {
      k++;
      const s = text.charCodeAt(k);
      if (s === 0x2b || s === 0x2d) k++;
      if (!isDigit(text.charCodeAt(k))) return error('an invalid number', i);
      while (isDigit(text.charCodeAt(k))) k++;
    }
    return k;
  };

  /** Called when a complete value has been consumed: advance the parent's state. */
  const valueDone = (): void => {
    const top = stack[stack.length - 1];
    if (top !== undefined) top.state = 'comma-or-end';
  };

  /** Record where a value starts under the current parent (if within depth). */
  const newPos = (): JsonPos | null => {
    const depth = stack.length;
    if (depth > MAX_POS_DEPTH) return null;
    const pos: JsonPos = { line };
    const top = stack[stack.length - 1];
    if (top === undefined) {
      rootBox.pos = pos;
    } else if (top.pos !== null) {
      if (top.kind === 'array') top.pos.items?.push(pos);
      else if (top.pos.props !== undefined && !top.pos.props.has(top.key)) {
        top.pos.props.set(top.key, pos);
      }
    }
    return pos;
  };

  /** Scan one value starting at i (whitespace already skipped). */
  const startValue = (): JsonScanResult | null => {
    if (i >= n) return error('the file ends where a value was expected');
    const c = text.charCodeAt(i);
    if (c === 0x7b || c === 0x5b) {
      const pos = newPos();
      if (pos !== null) {
        if (c === 0x5b) pos.items = [];
        else pos.props = new Map();
      }
      stack.push({
        kind: c === 0x5b ? 'array' : 'object',
        pos,
        state: c === 0x5b ? 'value-or-end' : 'key-or-end',
        key: '',
      });
      i++;
      return null;
    }
    newPos();
    let end: number | JsonScanResult;
    if (c === 0x22) end = scanString();
    else if (c === 0x2d || isDigit(c)) end = scanNumber();
    else if (text.startsWith('true', i)) end = i + 4;
    else if (text.startsWith('false', i)) end = i + 5;
    else if (text.startsWith('null', i)) end = i + 4;
    else return error('an unexpected character where a value was expected');
    if (typeof end !== 'number') return end;
    i = end;
    valueDone();
    return null;
  };

  skipWs();
  const first = startValue();
  if (first !== null) return first;

  while (stack.length > 0) {
    skipWs();
    const top = stack[stack.length - 1] as Frame;
    if (i >= n) return error('the file ends before all brackets are closed');
    const c = text.charCodeAt(i);
    const closer = top.kind === 'array' ? 0x5d : 0x7d;

    switch (top.state) {
      case 'value-or-end':
      case 'key-or-end':
        if (c === closer) {
          i++;
          stack.pop();
          valueDone();
          continue;
        }
        if (top.kind === 'array') {
          top.state = 'value';
          const r = startValue();
          if (r !== null) return r;
          continue;
        }
        top.state = 'key';
        continue;
      case 'value': {
        const r = startValue();
        if (r !== null) return r;
        continue;
      }
      case 'key': {
        if (c !== 0x22) return error('a property name in double quotes was expected');
        const end = scanString();
        if (typeof end !== 'number') return end;
        // The token is valid JSON, so JSON.parse decodes escapes correctly.
        top.key = JSON.parse(text.slice(i, end)) as string;
        i = end;
        top.state = 'colon';
        continue;
      }
      case 'colon':
        if (c !== 0x3a) return error('a colon after the property name was expected');
        i++;
        top.state = 'value';
        continue;
      case 'comma-or-end':
        if (c === closer) {
          i++;
          stack.pop();
          valueDone();
          continue;
        }
        if (c !== 0x2c) {
          return error(top.kind === 'array' ? 'a comma or ] was expected' : 'a comma or } was expected');
        }
        i++;
        top.state = top.kind === 'array' ? 'value' : 'key';
        continue;
      default:
        return error('an internal scanner error');
    }
  }

  skipWs();
  if (i < n) return error('unexpected content after the end of the JSON value');
  return rootBox.pos === null ? error('the file is empty') : { ok: true, root: rootBox.pos };
}
