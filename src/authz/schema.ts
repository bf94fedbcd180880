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

/** A field of the upstream's JSON response: a JSON Pointer (`/user_id`) or a simple path (`$.user_id`, `user.id`). */
export const RESPONSE_FIELD_PATTERN =
  '^(/.*|\\$\\.[A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]+)*|[A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]+)*)$';

/** Options of a rule decided on the upstream's response (`owner: { response: … }`, `tenant: { response: … }`). */
const responseBinding = {
  response: Type.Optional(
    Type.String({
      pattern: RESPONSE_FIELD_PATTERN,
      description:
        "Decide on the response instead: the field of the upstream's JSON response (a JSON Pointer such as /user_id, or a simple path such as $.user_id) that must equal the principal's value. The response is read whole (up to responses.max_bytes; larger is refused with 502) before any byte reaches the client; one that does not belong to the caller is refused. On an array response the field is read from each item.",
      expected: 'a JSON Pointer such as /user_id, or a simple path such as $.user_id',
    }),
  ),
  status: Type.Optional(
    Type.Union([Type.Literal(404), Type.Literal(403)], {
      description:
        "With response: the answer to a response that does not belong to the caller, 404 (default: the object's existence is not revealed; the upstream's own 404s on the route are answered the same way) or 403.",
      expected: '404 or 403',
    }),
  ),
  collection: Type.Optional(
    Type.String({
      pattern: '^/',
      description:
        'With response, for a collection wrapped in an object ({ "data": [...] }): the JSON Pointer of the array whose items are checked (the field is then read from each item). Without it, an array body is the collection and any other body one object. A response without an array there is refused (502).',
      expected: 'a JSON Pointer such as /data',
    }),
  ),
  items: Type.Optional(
    Type.Union([Type.Literal('remove'), Type.Literal('refuse')], {
      description:
        'With response, on an array response: remove the items that do not belong to the caller (default), or refuse the whole response.',
      expected: 'remove or refuse',
    }),
  ),
};

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
        param: Type.Optional(ParamRefs),
        ...responseBinding,
        claim: Type.Optional(
          Type.String({
            description: 'Principal claim the value must equal (default sub; the key id for API keys).',
          }),
        ),
      },
      {
        additionalProperties: false,
        minProperties: 1,
        description:
          'Object ownership (BOLA): the request value (param) or a field of the response (response) must be the principal’s own id.',
      },
    ),
  ),
  tenant: Type.Optional(
    Type.Object(
      { param: Type.Optional(ParamRefs), ...responseBinding },
      {
        additionalProperties: false,
        minProperties: 1,
        description:
          "Tenant isolation: the request value (param) or a field of the response (response) must equal the principal's tenant.",
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
