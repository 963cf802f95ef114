// Container image references as the container runtime reads them (the grammar of
// distribution/reference): [host[:port]/]path[:tag][@sha256:digest], the path in lower case.
// Kubernetes stores any string as an image; a reference the runtime cannot read leaves the pod in
// InvalidImageName, so Mutual refuses one before it reaches a pod.
const DOMAIN =
  '(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?';
const PATH_COMPONENT = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
const IMAGE_REFERENCE = new RegExp(
  `^(?:${DOMAIN}/)?${PATH_COMPONENT}(?:/${PATH_COMPONENT})*(?::[\\w][\\w.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$`,
);

export function isImageReference(reference: string): boolean {
  return IMAGE_REFERENCE.test(reference);
}
