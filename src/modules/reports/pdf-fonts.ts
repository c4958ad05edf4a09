import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

/**
 * The fonts embedded in the PDF reports, so that client and device names in any script print as
 * written (pdfkit's built-in Helvetica covers Western European only and printed the rest as "?").
 * Noto Sans (package @fontsource/noto-sans, OFL-1.1) draws Latin, Greek and Cyrillic; Noto Sans JP
 * (package @expo-google-fonts/noto-sans-jp, OFL-1.1) draws Chinese and Japanese characters and
 * anything else the first ones lack. Text is split into runs per glyph: each character is drawn with
 * the first font in the chain that has it. pdfkit embeds only the glyphs used (a subset).
 */

export type Weight = 'regular' | 'bold';
export type FontFile = { name: string; file: string };

const require = createRequire(import.meta.url);

function files(): Record<Weight, FontFile[]> {
  // @fontsource/noto-sans exports only CSS; its LICENSE is exported and sits next to files/.
  const noto = path.join(path.dirname(require.resolve('@fontsource/noto-sans/LICENSE')), 'files');
  const jp = path.dirname(require.resolve('@expo-google-fonts/noto-sans-jp/package.json'));
  const chain = (w: 400 | 700): FontFile[] => [
    ...['latin', 'latin-ext', 'greek', 'cyrillic', 'greek-ext', 'cyrillic-ext', 'vietnamese'].map((subset) => ({
      name: `noto-${subset}-${w}`,
      file: path.join(noto, `noto-sans-${subset}-${w}-normal.woff`),
    })),
    {
      name: `noto-jp-${w}`,
      file: w === 400 ? path.join(jp, '400Regular', 'NotoSansJP_400Regular.ttf') : path.join(jp, '700Bold', 'NotoSansJP_700Bold.ttf'),
    },
  ];
  return { regular: chain(400), bold: chain(700) };
}

let cache: { regular: { name: string; data: Buffer }[]; bold: { name: string; data: Buffer }[] } | undefined;

/** The font files, read once per process (about 11 MB, mostly the CJK font). */
export function reportFonts() {
  if (!cache) {
    const f = files();
    const load = (list: FontFile[]) => list.map((x) => ({ name: x.name, data: fs.readFileSync(x.file) }));
    cache = { regular: load(f.regular), bold: load(f.bold) };
  }
  return cache;
}
