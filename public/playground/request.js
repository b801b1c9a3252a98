/**
 * Pure helpers of the playground (no DOM): the request fields, the reproducing curl command, box JSON
 * parsing, `Server-Timing` and problem+json reading. Shared by the page and its tests.
 */

/**
 * Multipart fields (name, text value) of a request, in a fixed order, without the image part.
 * Arrays go as JSON text and plain values plain, as the API's multipart form expects.
 *
 * @param {'diff' | 'roi'} route which endpoint: `diff` adds `maxBoxes` and `channel`
 * @param {{ boxes: number[][], ops?: string[], outputSize: [number, number], samplingRatio: number,
 *           aligned: boolean, mode: string, maxBoxes?: number, channel?: string, format?: string }} p
 * @returns {[string, string][]}
 */
export function requestFields(route, p) {
  const [ph, pw] = p.outputSize;
  const fields = [['boxes', JSON.stringify(p.boxes)]];
  // Only /v1/roi downloads choose ops; /v1/diff always compares all three (its default).
  if (p.ops) fields.push(['ops', JSON.stringify(p.ops)]);
  fields.push(
    ['outputSize', ph === pw ? String(ph) : JSON.stringify([ph, pw])],
    ['samplingRatio', String(p.samplingRatio)],
    ['aligned', String(p.aligned)],
    ['mode', p.mode],
  );
  if (route === 'diff') {
    if (p.maxBoxes !== undefined) fields.push(['maxBoxes', String(p.maxBoxes)]);
    if (p.channel !== undefined && p.channel !== '') fields.push(['channel', p.channel]);
  }
  if (p.format) fields.push(['format', p.format]);
  return fields;
}

/** Quote `s` for a POSIX shell (single quotes; a single quote becomes `'\''`). Plain words stay bare. */
export function shellQuote(s) {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replaceAll("'", `'\\''`)}'`;
}

/**
 * The curl command that sends exactly these fields and the image file.
 * The API key, when one is used, is read from `$ROISERVE_API_KEY` instead of being pasted in clear.
 *
 * @param {string} url absolute endpoint URL, e.g. `http://127.0.0.1:8080/v1/diff`
 * @param {[string, string][]} fields from {@link requestFields}
 * @param {string} imageName file name the image is saved under next to the command
 * @param {string} output file the response goes to (`-o`)
 * @param {boolean} withKey add the `Authorization` header
 */
export function curlCommand(url, fields, imageName, output, withKey = false) {
  // curl -F treats ; and , in a file name as field options; quote the name for curl, then for the shell.
  const fileRef = /[;,"]/.test(imageName) ? `"${imageName.replaceAll('"', '\\"')}"` : imageName;
  const parts = ['curl -sS --fail-with-body'];
  if (withKey) parts.push(`-H "Authorization: Bearer $ROISERVE_API_KEY"`);
  parts.push(`-F ${shellQuote(`image=@${fileRef}`)}`);
  for (const [name, value] of fields) parts.push(`-F ${shellQuote(`${name}=${value}`)}`);
  parts.push(`-o ${shellQuote(output)}`, shellQuote(url));
  return parts.join(' \\\n  ');
}

/**
 * Parse pasted boxes: `[[x1, y1, x2, y2], ...]` (xyxy, image pixels), rows of 5 with batch index 0 first,
 * or an object with a `boxes` array (e.g. a copied request or response). Throws an Error naming the bad row.
 *
 * @returns {number[][]} rows of 4
 */
export function parseBoxes(text) {
  let value;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new Error(`not valid JSON (${e.message})`, { cause: e });
  }
  if (value && !Array.isArray(value) && Array.isArray(value.boxes)) value = value.boxes;
  if (!Array.isArray(value)) throw new Error('expected an array of boxes, e.g. [[10, 20, 110, 90]]');
  // A single box written flat: [x1, y1, x2, y2].
  if (value.length === 4 && value.every((v) => typeof v === 'number')) value = [value];
  return value.map((row, i) => {
    if (!Array.isArray(row) || (row.length !== 4 && row.length !== 5)) {
      throw new Error(`boxes[${i}]: expected 4 numbers [x1, y1, x2, y2] (or 5 with the batch index first)`);
    }
    if (!row.every((v) => typeof v === 'number' && Number.isFinite(v))) {
      throw new Error(`boxes[${i}]: expected finite numbers`);
    }
    if (row.length === 5 && row[0] !== 0) {
      throw new Error(`boxes[${i}][0]: an image has one batch entry, so the batch index must be 0`);
    }
    const [x1, y1, x2, y2] = row.length === 5 ? row.slice(1) : row;
    if (x2 < x1 || y2 < y1) throw new Error(`boxes[${i}]: expected x2 >= x1 and y2 >= y1 (xyxy format)`);
    return [x1, y1, x2, y2];
  });
}

/**
 * Parse a `Server-Timing` header: `decode;dur=1.2, backbone;dur=30;desc="tfjs"` →
 * `[{ name: 'decode', dur: 1.2 }, { name: 'backbone', dur: 30, desc: 'tfjs' }]`.
 */
export function parseServerTiming(header) {
  if (!header) return [];
  return header
    .split(',')
    .map((entry) => entry.trim())
    .filter(Boolean)
    .map((entry) => {
      const [name, ...params] = entry.split(';').map((s) => s.trim());
      const metric = { name };
      for (const param of params) {
        const eq = param.indexOf('=');
        if (eq < 0) continue;
        const key = param.slice(0, eq).trim();
        const raw = param
          .slice(eq + 1)
          .trim()
          .replace(/^"(.*)"$/, '$1');
        if (key === 'dur') metric.dur = Number(raw);
        else if (key === 'desc') metric.desc = raw;
      }
      return metric;
    });
}

/**
 * One message for an RFC 9457 problem body: `status: title — detail`, then per offending field
 * `field: expected …` (the service's `errors` array), or the text of any other error body.
 */
export function problemMessage(status, body) {
  if (body && typeof body === 'object') {
    const parts = [body.title || `HTTP ${status}`];
    if (body.detail && body.detail !== body.title) parts.push(body.detail);
    let text = `${status}: ${parts.join(' — ')}`;
    for (const e of Array.isArray(body.errors) ? body.errors.slice(0, 5) : []) {
      const where = e.field ? `${e.field}: ` : '';
      text += `\n${where}${e.expected ? `expected ${e.expected}` : (e.message ?? '')}`;
    }
    return text;
  }
  return `${status}: ${typeof body === 'string' && body ? body.slice(0, 300) : 'request failed'}`;
}
