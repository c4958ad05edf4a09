import { reportFonts, type Weight } from './pdf-fonts.js';

type Doc = PDFKit.PDFDocument;
type Run = { font: string; text: string };
/** pdfkit keeps the fontkit font of an embedded font on `doc._font.font`; only its cmap is read here. */
type WithFont = { _font?: { font?: { hasGlyphForCodePoint(cp: number): boolean } } };

const CJK = /[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]/u;

/**
 * Text with the embedded font chain: split into runs per glyph (first font that has the character),
 * measured and wrapped by us, and drawn run after run on a shared baseline. Wrapping breaks at
 * spaces, after every CJK character, and inside a word only when the word alone is wider than the cell.
 */
export class PdfText {
  private chains: Record<Weight, string[]>;
  private pick = new Map<string, string>();

  constructor(private doc: Doc) {
    const fonts = reportFonts();
    for (const f of [...fonts.regular, ...fonts.bold]) doc.registerFont(f.name, f.data);
    this.chains = { regular: fonts.regular.map((f) => f.name), bold: fonts.bold.map((f) => f.name) };
    doc.font(this.chains.regular[0]!);
  }

  private fontFor(cp: number, weight: Weight): string {
    const key = `${weight}:${cp}`;
    let name = this.pick.get(key);
    if (!name) {
      const chain = this.chains[weight];
      // Nothing has it: the last (widest) font draws its "missing glyph" box, never a "?".
      name = chain[chain.length - 1]!;
      for (const n of chain) {
        this.doc.font(n);
        if ((this.doc as unknown as WithFont)._font?.font?.hasGlyphForCodePoint(cp)) {
          name = n;
          break;
        }
      }
      this.pick.set(key, name);
    }
    return name;
  }

  runs(text: string, weight: Weight): Run[] {
    const out: Run[] = [];
    for (const ch of text) {
      // Spaces join the run before them: no font switch for a space.
      const font = ch === ' ' && out.length ? out[out.length - 1]!.font : this.fontFor(ch.codePointAt(0)!, weight);
      const last = out[out.length - 1];
      if (last && last.font === font) last.text += ch;
      else out.push({ font, text: ch });
    }
    return out;
  }

  width(text: string, size: number, weight: Weight = 'regular'): number {
    let w = 0;
    for (const r of this.runs(text, weight)) w += this.doc.font(r.font).fontSize(size).widthOfString(r.text);
    return w;
  }

  /** The lines `text` takes in `width` points. */
  wrap(text: string, width: number, size: number, weight: Weight = 'regular'): string[] {
    const lines: string[] = [];
    for (const paragraph of text.split('\n')) {
      const tokens = paragraph.match(new RegExp(`${CJK.source}|[^\\s\\u2e80-\\u9fff\\uac00-\\ud7af\\uf900-\\ufaff\\uff00-\\uffef]+|\\s+`, 'gu')) ?? [''];
      let line = '';
      const push = () => {
        lines.push(line.trimEnd());
        line = '';
      };
      for (const token of tokens) {
        if (this.width(line + token, size, weight) <= width) {
          line += token;
          continue;
        }
        if (/^\s+$/.test(token)) {
          push();
          continue;
        }
        if (line.trim()) push();
        line = '';
        // A word wider than the cell (a key ID, a command): broken between characters.
        for (const ch of token) {
          if (line && this.width(line + ch, size, weight) > width) push();
          line += ch;
        }
      }
      push();
    }
    return lines;
  }

  lineHeight(size: number): number {
    return size * 1.3;
  }

  /** Draws `text` wrapped in `width` from the top `y`; returns the height used. */
  draw(
    text: string,
    x: number,
    y: number,
    o: { size: number; width: number; weight?: Weight; color?: string; align?: 'left' | 'right' | 'center'; maxLines?: number },
  ): number {
    const weight = o.weight ?? 'regular';
    let lines = this.wrap(text, o.width, o.size, weight);
    if (o.maxLines) lines = lines.slice(0, o.maxLines);
    const lh = this.lineHeight(o.size);
    if (o.color) this.doc.fillColor(o.color);
    lines.forEach((line, i) => {
      const w = this.width(line, o.size, weight);
      let cx = x + (o.align === 'right' ? o.width - w : o.align === 'center' ? (o.width - w) / 2 : 0);
      // One baseline for every run, whatever each font's ascent.
      const baseline = y + i * lh + o.size;
      for (const r of this.runs(line, weight)) {
        this.doc.font(r.font).fontSize(o.size).text(r.text, cx, baseline, { lineBreak: false, baseline: 'alphabetic' });
        cx += this.doc.widthOfString(r.text);
      }
    });
    return lines.length * lh;
  }

  /** The height `draw` would use. */
  height(text: string, width: number, size: number, weight: Weight = 'regular'): number {
    return this.wrap(text, width, size, weight).length * this.lineHeight(size);
  }
}
