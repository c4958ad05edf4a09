/**
 * JSON exports.
 *
 * Accepted shapes:
 * - an array of objects using the same field names as CSV (case-insensitive,
 *   same synonyms, see fields.ts);
 * - a single such object;
 * - a Microsoft Graph list response `{ "value": [ ... ], "@odata.nextLink"?: … }`;
 * - Graph `bitlockerRecoveryKey` objects `{ id, createdDateTime, volumeType,
 *   deviceId, key }`: `id` is the key ID, `key` the password, `deviceId` the
 *   Entra device ID (all covered by the synonym lists);
 * - PowerShell `Get-BitLockerVolume | ConvertTo-Json -Depth 3`: volume objects
 *   with a `KeyProtector` array; each protector carrying a `RecoveryPassword`
 *   becomes a record that inherits the volume's fields (MountPoint,
 *   VolumeType, ComputerName).
 *
 * Each record's line is where its object starts, found by json-scan.ts.
 */
import { buildRecord, normalizeFieldName, FIELD_SYNONYMS, type FieldName } from './fields.js';
import { scanJson, type JsonPos } from './json-scan.js';
import { ImportFormatError, Rejections, type ImportRecord, type ParsedRows } from './types.js';

type JsonObject = Record<string, unknown>;

const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

/** An object with its property names normalized once (first occurrence wins). */
interface Keyed {
  obj: JsonObject;
  /** normalized name → original property name */
  keys: Map<string, string>;
}

function keyed(obj: JsonObject): Keyed {
  const keys = new Map<string, string>();
  for (const k of Object.keys(obj)) {
    const nk = normalizeFieldName(k);
    if (!keys.has(nk)) keys.set(nk, k);
  }
  return { obj, keys };
}

const FALLBACK_DEVICE = ['name', 'displayname'];

function makeGetter(layers: Keyed[]): (field: FieldName) => unknown {
  // Later layers (a protector) override earlier ones (its volume).
  return (field) => {
    const synonyms = field === 'deviceName' ? [...FIELD_SYNONYMS.deviceName, ...FALLBACK_DEVICE] : FIELD_SYNONYMS[field];
    for (let l = layers.length - 1; l >= 0; l--) {
      const layer = layers[l];
      if (layer === undefined) continue;
      for (const syn of synonyms) {
        const original = layer.keys.get(syn);
        if (original !== undefined) return layer.obj[original];
      }
    }
    return undefined;
  };
}

function hasPasswordField(k: Keyed): boolean {
  return FIELD_SYNONYMS.recoveryPassword.some((s) => k.keys.has(s));
}

/** Find a property by normalized name, returning its value and its position. */
function prop(k: Keyed, pos: JsonPos | undefined, names: readonly string[]): { value: unknown; pos: JsonPos | undefined } | undefined {
  for (const name of names) {
    const original = k.keys.get(name);
    if (original !== undefined) return { value: k.obj[original], pos: pos?.props?.get(original) };
  }
  return undefined;
}

function invalidJson(line: number, column: number, problem: string): ImportFormatError {
  return new ImportFormatError(`the file is not valid JSON: ${problem} at line ${line}, column ${column}`);
}

export function parseJson(text: string): ParsedRows {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    // Never surface V8's message: it quotes the input around the error.
    const scan = scanJson(text);
    if (!scan.ok) throw invalidJson(scan.line, scan.column, scan.problem);
    throw new ImportFormatError('the file is not valid JSON');
  }
  const scan = scanJson(text);
  const rootPos: JsonPos = scan.ok ? scan.root : { line: 1 };

  let elements: unknown[];
  let positions: (JsonPos | undefined)[];
  if (Array.isArray(data)) {
    elements = data;
    positions = rootPos.items ?? [];
  } else if (isObject(data)) {
    const list = prop(keyed(data), rootPos, ['value']);
    if (list !== undefined && Array.isArray(list.value)) {
      elements = list.value;
      positions = list.pos?.items ?? [];
    } else {
      elements = [data];
      positions = [rootPos];
    }
  } else {
    throw new ImportFormatError('a JSON import must be an array of key objects, a single key object, or a Graph response with a "value" array');
  }

  const records: ImportRecord[] = [];
  const rejected = new Rejections();
  elements.forEach((element, index) => {
    const pos = positions[index];
    const line = pos?.line ?? rootPos.line;
    if (!isObject(element)) {
      rejected.add(line, 'this entry is not an object');
      return;
    }

    const el = keyed(element);
    // PowerShell Get-BitLockerVolume shape: one record per protector that has
    // a recovery password; TPM and other protectors are skipped.
    const protectors = hasPasswordField(el) ? undefined : prop(el, pos, ['keyprotector', 'keyprotectors']);
    if (protectors !== undefined && Array.isArray(protectors.value)) {
      let found = 0;
      protectors.value.forEach((p, pi) => {
        if (!isObject(p)) return;
        const pk = keyed(p);
        if (!hasPasswordField(pk)) return;
        const base = makeGetter([el, pk]);
        // PowerShell 5.1 writes its own VolumeType enum as a number whose
        // values do not match Graph's, so a number here is not trusted.
        const g = (field: FieldName): unknown => {
          const v = base(field);
          return field === 'volumeType' && typeof v === 'number' ? 'unknown' : v;
        };
        const raw = g('recoveryPassword');
        if (raw === undefined || raw === null || raw === '') return;
        found++;
        const pLine = protectors.pos?.items?.[pi]?.line ?? line;
        const built = buildRecord(pLine, g);
        if (built.ok) records.push(built.value);
        else rejected.add(pLine, built.reason);
      });
      if (found === 0) {
        rejected.add(line, 'this volume has no recovery password protector');
      }
      return;
    }

    if (!hasPasswordField(el)) {
      const graphLike = el.keys.has('id') && (el.keys.has('createddatetime') || el.keys.has('volumetype'));
      rejected.add(
        line,
        graphLike
          ? 'no recovery password in this entry (Graph lists leave out the key; fetch each key with $select=key)'
          : 'no recovery password in this entry',
      );
      return;
    }
    const built = buildRecord(line, makeGetter([el]));
    if (built.ok) records.push(built.value);
    else rejected.add(line, built.reason);
  });

  return rejected.rows(records);
}
