/** The one version of the package, the binary and the image tag. */
export const VERSION = '0.1.0';
