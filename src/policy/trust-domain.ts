// Istio reads the trust domain `cluster.local` in a policy's principals as "this mesh's trust
// domain" (pilot/pkg/security/trustdomain/bundle.go): with a mesh in example.org, a policy naming
// `cluster.local/ns/a/sa/b` means `example.org/ns/a/sa/b`. Rewritten here before compiling, so
// Istio YAML keeps its meaning in any trust domain, DENY rules included.
import type { AuthorizationRuleInput } from './schema.ts';

export const ISTIO_DEFAULT_TRUST_DOMAIN = 'cluster.local';

/** The rule with `cluster.local` principals (and source.principal values) in `trustDomain`. */
export function withLocalTrustDomain(
  rule: AuthorizationRuleInput,
  trustDomain: string,
): AuthorizationRuleInput {
  if (trustDomain === ISTIO_DEFAULT_TRUST_DOMAIN) return rule;
  const rewrite = (values: readonly string[] | undefined) =>
    values?.map((value) => replaceTrustDomain(value, trustDomain));
  return {
    ...rule,
    ...(rule.from === undefined
      ? {}
      : {
          from: rule.from.map(({ source }) => ({
            source: {
              ...source,
              ...(source.principals ? { principals: rewrite(source.principals) } : {}),
              ...(source.notPrincipals ? { notPrincipals: rewrite(source.notPrincipals) } : {}),
            },
          })),
        }),
    ...(rule.when === undefined
      ? {}
      : {
          when: rule.when.map((condition) =>
            condition.key === 'source.principal'
              ? {
                  ...condition,
                  ...(condition.values ? { values: rewrite(condition.values) } : {}),
                  ...(condition.notValues ? { notValues: rewrite(condition.notValues) } : {}),
                }
              : condition,
          ),
        }),
  };
}

/**
 * As Istio's ReplaceTrustDomainAliases: only a principal of exactly five `/`-parts whose trust
 * domain is `cluster.local` is rewritten (`cluster.local/ns/a/sa/*` is, `cluster.local/ns/a/*`
 * and `*` /ns/a/sa/b are not).
 */
export function replaceTrustDomain(principal: string, trustDomain: string): string {
  const parts = principal.split('/');
  if (parts.length !== 5 || parts[0] !== ISTIO_DEFAULT_TRUST_DOMAIN) return principal;
  return [trustDomain, ...parts.slice(1)].join('/');
}

/** The trust domain of a SPIFFE ID (`spiffe://td/...`), or undefined if it is not one. */
export function trustDomainOf(spiffeId: string): string | undefined {
  return /^spiffe:\/\/([^/]+)/.exec(spiffeId)?.[1];
}
