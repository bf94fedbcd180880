/**
 * Documents for tests and benchmarks, generated rather than committed: a
 * large API (any number of operations, shaped like a real one) and small
 * files written to a temporary folder.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';

/** A temporary folder for documents; `remove()` deletes it. */
export function documentFolder(): { dir: string; write(name: string, doc: unknown): string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-openapi-'));
  return {
    dir,
    write(name, doc) {
      const file = join(dir, name);
      writeFileSync(
        file,
        typeof doc === 'string' ? doc : name.endsWith('.json') ? JSON.stringify(doc) : stringify(doc),
      );
      return file;
    },
    remove() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * An OpenAPI 3.1 document with `operations` operations: resources with list,
 * create, read, replace and delete (five operations each), path and query
 * parameters, request bodies with readOnly properties, and responses that
 * share component schemas through `$ref`, with composition (`allOf`, `oneOf`).
 */
export function largeDocument(operations: number): Record<string, unknown> {
  const paths: Record<string, unknown> = {};
  const schemas: Record<string, unknown> = {
    Id: { type: 'string', pattern: '^[a-z0-9_]{1,40}$' },
    Audit: {
      type: 'object',
      properties: {
        created_at: { type: 'string', format: 'date-time', readOnly: true },
        updated_at: { type: 'string', format: 'date-time', readOnly: true },
      },
    },
    Error: {
      type: 'object',
      additionalProperties: false,
      required: ['code'],
      properties: { code: { type: 'string', maxLength: 100 }, message: { type: 'string', maxLength: 1000 } },
    },
  };
  const resources = Math.ceil(operations / 5);
  let count = 0;
  for (let r = 0; r < resources && count < operations; r++) {
    const name = `Resource${r}`;
    schemas[name] = {
      allOf: [
        { $ref: '#/components/schemas/Audit' },
        {
          type: 'object',
          required: ['id', 'name'],
          properties: {
            id: { $ref: '#/components/schemas/Id', readOnly: true },
            name: { type: 'string', minLength: 1, maxLength: 100 },
            quantity: { type: 'integer', minimum: 0, maximum: 10000 },
            price: { type: 'number', minimum: 0 },
            status: { type: 'string', enum: ['draft', 'active', 'archived'] },
            tags: { type: 'array', maxItems: 20, items: { type: 'string', maxLength: 30 } },
            contact: { oneOf: [{ type: 'string', format: 'email' }, { type: 'null' }] },
            notes: { type: 'string', maxLength: 20000 },
            lines: {
              type: 'array',
              maxItems: 500,
              items: {
                type: 'object',
                additionalProperties: false,
                required: ['sku', 'qty'],
                properties: {
                  sku: { type: 'string', pattern: '^[A-Z0-9-]{1,20}$' },
                  qty: { type: 'integer', minimum: 1 },
                },
              },
            },
            secret: { type: 'string', writeOnly: true },
          },
        },
      ],
    };
    const list = `/v1/resource-${r}`;
    const item = `/v1/resource-${r}/{id}`;
    const ref = { $ref: `#/components/schemas/${name}` };
    const ok = (schema: unknown, status = '200') => ({
      [status]: { description: 'OK', content: { 'application/json': { schema } } },
      '400': {
        description: 'Bad',
        content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
      },
    });
    const idParam = { name: 'id', in: 'path', required: true, schema: { $ref: '#/components/schemas/Id' } };
    const ops: [string, string, Record<string, unknown>][] = [
      [
        list,
        'get',
        {
          operationId: `list${name}`,
          parameters: [
            { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 100 } },
            {
              name: 'status',
              in: 'query',
              schema: { type: 'string', enum: ['draft', 'active', 'archived'] },
            },
          ],
          responses: ok({ type: 'array', maxItems: 100, items: ref }),
        },
      ],
      [
        list,
        'post',
        {
          operationId: `create${name}`,
          requestBody: { required: true, content: { 'application/json': { schema: ref } } },
          responses: ok(ref, '201'),
        },
      ],
      [item, 'get', { operationId: `get${name}`, parameters: [idParam], responses: ok(ref) }],
      [
        item,
        'put',
        {
          operationId: `replace${name}`,
          parameters: [idParam],
          requestBody: { required: true, content: { 'application/json': { schema: ref } } },
          responses: ok(ref),
        },
      ],
      [
        item,
        'delete',
        {
          operationId: `delete${name}`,
          parameters: [idParam],
          responses: { '204': { description: 'Gone' } },
        },
      ],
    ];
    for (const [path, method, op] of ops) {
      if (count >= operations) break;
      const entry = (paths[path] ?? {}) as Record<string, unknown>;
      entry[method] = op;
      paths[path] = entry;
      count++;
    }
  }
  return {
    openapi: '3.1.0',
    info: { title: `Large generated API (${operations} operations)`, version: '1.0.0' },
    paths,
    components: { schemas },
  };
}
