/** The OWASP API Security Top 10 (2023) items the report checks, with what the gateway offers for each. */

export const OWASP_IDS = [
  'API1',
  'API2',
  'API3',
  'API4',
  'API5',
  'API6',
  'API7',
  'API8',
  'API9',
  'API10',
] as const;
export type OwaspId = (typeof OWASP_IDS)[number];

export interface OwaspRule {
  readonly id: OwaspId;
  /** PascalCase, as SARIF's `reportingDescriptor.name` wants. */
  readonly name: string;
  readonly title: string;
  /** What the report checks and which config closes the gap. */
  readonly help: string;
  readonly url: string;
}

const BASE = 'https://owasp.org/API-Security/editions/2023/en/';

export const OWASP_RULES: Readonly<Record<OwaspId, OwaspRule>> = {
  API1: {
    id: 'API1',
    name: 'BrokenObjectLevelAuthorization',
    title: 'Broken Object Level Authorization',
    help: 'A route with an object id in its path needs an ownership rule: authorize.owner (the id, or a field of the response, must be the caller’s) or authorize.tenant.',
    url: `${BASE}0xa1-broken-object-level-authorization/`,
  },
  API2: {
    id: 'API2',
    name: 'BrokenAuthentication',
    title: 'Broken Authentication',
    help: 'Routes should authenticate (auth other than none) and auth.brute_force should stay enabled; API keys belong in a header, not the query string.',
    url: `${BASE}0xa2-broken-authentication/`,
  },
  API3: {
    id: 'API3',
    name: 'BrokenObjectPropertyLevelAuthorization',
    title: 'Broken Object Property Level Authorization',
    help: 'A route returning objects needs a response schema in the API description (undeclared properties are removed) or redaction (responses.redact).',
    url: `${BASE}0xa3-broken-object-property-level-authorization/`,
  },
  API4: {
    id: 'API4',
    name: 'UnrestrictedResourceConsumption',
    title: 'Unrestricted Resource Consumption',
    help: 'Each route needs a rate limit, quota or concurrency limit (rate_limits) and a body limit (body_limit, not none).',
    url: `${BASE}0xa4-unrestricted-resource-consumption/`,
  },
  API5: {
    id: 'API5',
    name: 'BrokenFunctionLevelAuthorization',
    title: 'Broken Function Level Authorization',
    help: 'An administrative path (/admin, /internal, /manage, …) needs a role rule (authorize.roles).',
    url: `${BASE}0xa5-broken-function-level-authorization/`,
  },
  API6: {
    id: 'API6',
    name: 'UnrestrictedAccessToSensitiveBusinessFlows',
    title: 'Unrestricted Access to Sensitive Business Flows',
    help: 'A hint: a route that looks like a business flow (purchase, sign-up, comment, …) should have a per-principal limit or quota. Hints never fail --fail-on.',
    url: `${BASE}0xa6-unrestricted-access-to-sensitive-business-flows/`,
  },
  API7: {
    id: 'API7',
    name: 'ServerSideRequestForgery',
    title: 'Server Side Request Forgery',
    help: 'A URL-valued input (format: uri, or a name such as callback_url) needs x-portcullis-url in its schema: { schemes: [https], deny_private: true, allow_hosts: [...] }, with validation enforced.',
    url: `${BASE}0xa7-server-side-request-forgery/`,
  },
  API8: {
    id: 'API8',
    name: 'SecurityMisconfiguration',
    title: 'Security Misconfiguration',
    help: 'TLS on the public listener (listen.tls), no CORS "*" with credentials, injection inspection and request validation enforced.',
    url: `${BASE}0xa8-security-misconfiguration/`,
  },
  API9: {
    id: 'API9',
    name: 'ImproperInventoryManagement',
    title: 'Improper Inventory Management',
    help: 'Every route should be in the API description (api.document), and every operation of the description served by a route or removed from it.',
    url: `${BASE}0xa9-improper-inventory-management/`,
  },
  API10: {
    id: 'API10',
    name: 'UnsafeConsumptionOfApis',
    title: 'Unsafe Consumption of APIs',
    help: 'Upstreams over https:// with certificate verification on (upstreams.NAME.tls.verify).',
    url: `${BASE}0xaa-unsafe-consumption-of-apis/`,
  },
};
