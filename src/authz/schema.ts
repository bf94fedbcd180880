/** The authorization policy language: per-route rule sets (TypeBox → JSON Schema). */
import { Type } from '@sinclair/typebox';

const Strings = (description: string) =>
  Type.Array(Type.String({ minLength: 1 }), { minItems: 1, description });

const AllAny = (what: string) =>
  Type.Union(
    [
      Strings(`Every one of these ${what} is required.`),
      Type.Object(
        {
          all: Type.Optional(Strings(`Every one of these ${what} is required.`)),
          any: Type.Optional(Strings(`At least one of these ${what} is required.`)),
        },
        { additionalProperties: false, minProperties: 1 },
      ),
    ],
    {
      description: `${what[0]!.toUpperCase()}${what.slice(1)} the principal must hold: a list (all of them), or { all, any }.`,
      expected: `a list of ${what}, or { all: [...], any: [...] }`,
    },
  );

const Scalar = Type.Union([Type.String(), Type.Number(), Type.Boolean()]);

const ClaimCondition = Type.Union(
  [
    Scalar,
    Type.Object(
      {
        equals: Type.Optional(Scalar),
        in: Type.Optional(Type.Array(Scalar, { minItems: 1 })),
        matches: Type.Optional(Type.String({ minLength: 1 })),
        exists: Type.Optional(Type.Boolean()),
      },
      { additionalProperties: false, minProperties: 1, maxProperties: 1 },
    ),
  ],
  {
    description:
      'A value the claim must equal, or one of { equals }, { in: [...] }, { matches: regex }, { exists }.',
    expected: 'a value, or { equals | in | matches | exists }',
  },
);

/** Where a request value comes from: `path.NAME`, `query.NAME`, `header.NAME` or `body.a.b`. */
export const PARAM_PATTERN = '^(path|query|header|body)\\.[A-Za-z0-9_.-]+$';
const ParamRef = Type.String({
  pattern: PARAM_PATTERN,
  description: 'path.NAME, query.NAME, header.NAME or body.FIELD (dotted)',
  expected: 'path.NAME, query.NAME, header.NAME or body.FIELD',
});
const ParamRefs = Type.Union([ParamRef, Type.Array(ParamRef, { minItems: 1 })], {
  description: 'One request value, or several that must all agree.',
  expected: 'path.NAME, query.NAME, header.NAME or body.FIELD, or a list of them',
});

const Cidrs = Type.Array(Type.String({ minLength: 2 }), { description: 'IP addresses or CIDR blocks.' });

export const NetworkSchema = Type.Object(
  {
    allow: Type.Optional(Cidrs),
    deny: Type.Optional(Cidrs),
  },
  {
    additionalProperties: false,
    description: 'Client IP rules: a denied address is refused; with an allow list, only listed ones pass.',
  },
);

const ruleProperties = {
  scopes: Type.Optional(AllAny('scopes')),
  roles: Type.Optional(AllAny('roles')),
  claims: Type.Optional(
    Type.Record(Type.String({ minLength: 1 }), ClaimCondition, {
      description: 'Conditions on claims by dotted path, e.g. email_verified: true.',
    }),
  ),
  owner: Type.Optional(
    Type.Object(
      {
        param: ParamRefs,
        claim: Type.Optional(
          Type.String({
            description: 'Principal claim the value must equal (default sub; the key id for API keys).',
          }),
        ),
      },
      {
        additionalProperties: false,
        description: 'Object ownership (BOLA): the request value must be the principal’s own id.',
      },
    ),
  ),
  tenant: Type.Optional(
    Type.Object(
      { param: ParamRefs },
      {
        additionalProperties: false,
        description: "Tenant isolation: the request value must equal the principal's tenant.",
      },
    ),
  ),
  network: Type.Optional(NetworkSchema),
};

const RuleSet = Type.Object(ruleProperties, {
  additionalProperties: false,
  description: 'Rules that must all pass.',
});

export const AuthorizeSchema = Type.Union(
  [
    Type.Literal('any-authenticated'),
    Type.Object(
      {
        mode: Type.Optional(
          Type.Union([Type.Literal('enforce'), Type.Literal('shadow')], {
            description:
              'enforce (default), or shadow: evaluate and report would-be denials, but let the request through.',
          }),
        ),
        ...ruleProperties,
        any: Type.Optional(
          Type.Array(RuleSet, { minItems: 1, description: 'Alternatives: at least one rule set must pass.' }),
        ),
      },
      { additionalProperties: false },
    ),
  ],
  {
    description:
      'Who may call the route: "any-authenticated", or rules (scopes, roles, claims, owner, tenant, network, any) that must all pass.',
    expected: '"any-authenticated" or a mapping of rules',
  },
);

export const AuthorizationSchema = Type.Object(
  { network: Type.Optional(NetworkSchema) },
  { additionalProperties: false, default: {}, description: 'Rules for every route.' },
);
