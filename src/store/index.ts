// Files on disk: the CA directory layout and writes that never replace existing keys.
// Parsing and checking stay in pki/; this module only moves bytes between disk and pki/.

export {
  CA_FILES,
  type CaFilePaths,
  caFilePaths,
  type LoadedCa,
  readCaDirectory,
  writeCaDirectory,
} from './ca-directory.ts';
export {
  fileKind,
  MAX_INPUT_FILE_BYTES,
  makeDirectory,
  makeDirectorySync,
  type OutputFile,
  type RegularFileRead,
  readBoundedText,
  readFailure,
  readFileBytes,
  readRegularFile,
  readTextFile,
  SECRET_FILE_MODE,
  writeNewFiles,
} from './files.ts';
