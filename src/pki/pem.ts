import { MutualError } from '../errors.ts';

export interface PemBlock {
  /** The label between BEGIN and END, e.g. 'CERTIFICATE' or 'PRIVATE KEY'. */
  readonly type: string;
  readonly der: Buffer;
}

const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----([^-]*)-----END ([A-Z0-9 ]+)-----/g;
const BASE64_BODY = /^[A-Za-z0-9+/\s]*(?:=\s*){0,2}$/;
const PRIVATE_KEY_TYPES = new Set([
  'PRIVATE KEY',
  'EC PRIVATE KEY',
  'RSA PRIVATE KEY',
  'ENCRYPTED PRIVATE KEY',
]);

/**
 * Decodes every PEM block in `text`. Strict: a BEGIN without its END, a mismatched END, or a
 * body that is not base64 is an error (OpenSSL would skip it silently and load fewer roots).
 */
export function decodePem(text: string, source = 'input'): PemBlock[] {
  const blocks: PemBlock[] = [];
  let consumedUpTo = 0;
  for (const match of text.matchAll(BLOCK)) {
    const [whole, beginType, body, endType] = match as unknown as [string, string, string, string];
    const between = text.slice(consumedUpTo, match.index);
    if (between.includes('-----BEGIN')) {
      throw malformed(source, 'a BEGIN line has no matching END line');
    }
    if (beginType !== endType) {
      throw malformed(source, `"BEGIN ${beginType}" is closed by "END ${endType}"`);
    }
    if (!BASE64_BODY.test(body) || body.trim() === '') {
      throw malformed(source, `the ${beginType} block is not valid base64`);
    }
    const der = Buffer.from(body.replace(/\s+/g, ''), 'base64');
    if (der.length === 0) throw malformed(source, `the ${beginType} block is empty`);
    blocks.push({ type: beginType, der });
    consumedUpTo = match.index + whole.length;
  }
  if (text.slice(consumedUpTo).includes('-----BEGIN')) {
    throw malformed(source, 'a BEGIN line has no matching END line (truncated file?)');
  }
  if (blocks.length === 0) {
    throw malformed(source, 'no PEM block found (expected "-----BEGIN ...-----" lines)');
  }
  return blocks;
}

/** Decodes PEM and insists every block has one of `types`; names what was found otherwise. */
export function decodePemOfType(text: string, types: readonly string[], source = 'input'): PemBlock[] {
  const blocks = decodePem(text, source);
  // A private key anywhere is what to name: `openssl ecparam -genkey` puts EC PARAMETERS first.
  const wrong = blocks.filter((block) => !types.includes(block.type));
  const block = wrong.find((candidate) => PRIVATE_KEY_TYPES.has(candidate.type)) ?? wrong[0];
  if (block !== undefined) {
    const hint = PRIVATE_KEY_TYPES.has(block.type)
      ? ' (this is a private key; never pass keys where certificates belong)'
      : '';
    throw new MutualError(
      'MUTUAL_PKI_PEM_WRONG_TYPE',
      `${source}: expected ${types.map((type) => `"${type}"`).join(' or ')} PEM blocks but found "${block.type}"${hint}`,
      { detail: { expected: types.join(','), found: block.type } },
    );
  }
  return blocks;
}

/** Encodes DER as PEM with 64-column lines and a trailing newline, so blocks can be concatenated safely. */
export function encodePem(type: string, der: Uint8Array): string {
  const base64 = Buffer.from(der).toString('base64');
  const lines = base64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${type}-----\n${lines.join('\n')}\n-----END ${type}-----\n`;
}

export function isPrivateKeyPemType(type: string): boolean {
  return PRIVATE_KEY_TYPES.has(type);
}

function malformed(source: string, why: string): MutualError {
  return new MutualError('MUTUAL_PKI_PEM_MALFORMED', `${source}: malformed PEM: ${why}`);
}
