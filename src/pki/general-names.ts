// GeneralNames (SAN) and NameConstraints decoded straight from DER. @peculiar/asn1-x509 turns
// iPAddress into a lossy string (an 8-byte SAN or a non-contiguous mask silently becomes
// "a.b.c.d/n"), and name checks must see the exact bytes, so this reads the few TLVs itself.

/** One GeneralName. `value` is the IA5 text for dns/uri/email, `bytes` the raw content for all. */
export interface GeneralNameEntry {
  readonly type: 'dns' | 'uri' | 'email' | 'ip' | 'directoryName' | 'other';
  readonly value: string;
  readonly bytes: Uint8Array;
}

export interface NameConstraintsValue {
  /** undefined when the permittedSubtrees field is absent. */
  readonly permitted: readonly GeneralNameEntry[] | undefined;
  readonly excluded: readonly GeneralNameEntry[] | undefined;
}

export interface Tlv {
  readonly tag: number;
  readonly content: Uint8Array;
  /** Offset just after this TLV in the buffer it was read from. */
  readonly end: number;
}

const TAG_SEQUENCE = 0x30;

/** One DER TLV at `offset` (single-byte tags, definite minimal lengths). Throws on malformed DER. */
export function readTlv(buf: Uint8Array, offset: number): Tlv {
  const tag = buf[offset];
  let lengthByte = buf[offset + 1];
  if (tag === undefined || lengthByte === undefined) throw new Error('truncated DER');
  if ((tag & 0x1f) === 0x1f) throw new Error('multi-byte DER tags are not used in GeneralNames');
  let cursor = offset + 2;
  let length = lengthByte;
  if (lengthByte & 0x80) {
    const octets = lengthByte & 0x7f;
    if (octets === 0 || octets > 3) throw new Error('unsupported DER length');
    length = 0;
    for (let i = 0; i < octets; i++) {
      lengthByte = buf[cursor++];
      if (lengthByte === undefined) throw new Error('truncated DER length');
      length = length * 256 + lengthByte;
    }
    if (length < 0x80) throw new Error('non-minimal DER length');
  }
  const end = cursor + length;
  if (end > buf.length) throw new Error('DER length runs past the end');
  return { tag, content: buf.subarray(cursor, end), end };
}

/** Reads every TLV in `buf`, insisting they fill it exactly. */
function readAll(buf: Uint8Array): Tlv[] {
  const items: Tlv[] = [];
  let offset = 0;
  while (offset < buf.length) {
    const tlv = readTlv(buf, offset);
    items.push(tlv);
    offset = tlv.end;
  }
  return items;
}

function readSingle(buf: Uint8Array, expectedTag: number): Tlv {
  const tlv = readTlv(buf, 0);
  if (tlv.tag !== expectedTag || tlv.end !== buf.length) throw new Error('unexpected DER structure');
  return tlv;
}

function ascii(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('latin1');
}

function decodeGeneralName(tlv: Tlv): GeneralNameEntry {
  const bytes = tlv.content;
  switch (tlv.tag) {
    case 0x81:
      return { type: 'email', value: ascii(bytes), bytes };
    case 0x82:
      return { type: 'dns', value: ascii(bytes), bytes };
    case 0x86:
      return { type: 'uri', value: ascii(bytes), bytes };
    case 0x87:
      return { type: 'ip', value: '', bytes };
    case 0xa4:
      return { type: 'directoryName', value: '', bytes };
    case 0xa0: // otherName
    case 0xa3: // x400Address
    case 0xa5: // ediPartyName
    case 0x88: // registeredID
      return { type: 'other', value: `[${tlv.tag & 0x1f}]`, bytes };
    default:
      throw new Error(`unknown GeneralName tag 0x${tlv.tag.toString(16)}`);
  }
}

/** Whether `der` is exactly one TLV, with no bytes after it (parsers ignore trailing bytes silently). */
export function isSingleTlv(der: Uint8Array): boolean {
  try {
    return readTlv(der, 0).end === der.length;
  } catch {
    return false;
  }
}

/** Decodes a subjectAltName extension value (GeneralNames). Throws on malformed DER. */
export function decodeGeneralNames(extnValue: Uint8Array): GeneralNameEntry[] {
  const sequence = readSingle(extnValue, TAG_SEQUENCE);
  const names = readAll(sequence.content).map(decodeGeneralName);
  if (names.length === 0) throw new Error('subjectAltName holds no names');
  return names;
}

function decodeSubtrees(content: Uint8Array): GeneralNameEntry[] {
  return readAll(content).map((subtree) => {
    if (subtree.tag !== TAG_SEQUENCE) throw new Error('GeneralSubtree is not a SEQUENCE');
    const [base, ...rest] = readAll(subtree.content);
    if (base === undefined) throw new Error('GeneralSubtree has no base');
    // RFC 5280 §4.2.1.10: minimum MUST be 0 (so absent in DER) and maximum MUST be absent.
    if (rest.length > 0) throw new Error('GeneralSubtree minimum/maximum are not allowed');
    return decodeGeneralName(base);
  });
}

/** Decodes a nameConstraints extension value. Throws on malformed DER. */
export function decodeNameConstraints(extnValue: Uint8Array): NameConstraintsValue {
  const sequence = readSingle(extnValue, TAG_SEQUENCE);
  let permitted: GeneralNameEntry[] | undefined;
  let excluded: GeneralNameEntry[] | undefined;
  for (const field of readAll(sequence.content)) {
    if (field.tag === 0xa0 && permitted === undefined && excluded === undefined) {
      permitted = decodeSubtrees(field.content);
    } else if (field.tag === 0xa1 && excluded === undefined) {
      excluded = decodeSubtrees(field.content);
    } else {
      throw new Error('unexpected field in NameConstraints');
    }
  }
  return { permitted, excluded };
}

/** Dotted-quad or RFC 5952 text for a 4- or 16-byte address (the caller has checked the length). */
export function formatIpAddress(bytes: Uint8Array): string {
  if (bytes.length === 4) return Array.from(bytes).join('.');
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0));
  // RFC 5952: compress the longest run (at least two) of zero groups, the first one on a tie.
  let bestStart = -1;
  let bestLength = 1;
  for (let start = 0; start < 8; start++) {
    let length = 0;
    while (start + length < 8 && groups[start + length] === 0) length++;
    if (length > bestLength) {
      bestStart = start;
      bestLength = length;
    }
  }
  const hex = groups.map((group) => group.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}
