/**
 * A document's operations as complete, compiled route settings, without
 * the config loader: for tests, benchmarks and tools. The loader itself
 * feeds `documentRoutes` through its own route checks instead.
 */

import type { AuthMethod, RouteSettings } from '../config/types.js';
import { toRouterPath } from '../stages/route/index.js';
import { parseSize } from '../util/units.js';
import type { LoadedApiDocument } from './document.js';
import { ApiDocumentError } from './document.js';
import { applyExtensions, documentRoutes, matchOperations } from './routes.js';

import type { RawApi, RawRouteApi } from './schema.js';
import { type ApiRouteSettings, compileRouteApi, RouteApiError } from './settings.js';

/** The extensions `configRoute` compiles: the API settings sections. */
const API_SECTIONS: ReadonlySet<string> = new Set(['validation', 'inspection', 'responses']);

export interface ToRouteSettingsOptions {
  readonly authMethods: readonly AuthMethod[];
  /** Default body limit in bytes (the listener default is 1 MiB). */
  readonly bodyLimit?: number;
}

export type ApiRoute = RouteSettings & ApiRouteSettings;

/** Every operation of `doc` as a compiled route. Throws ApiDocumentError or RouteApiError. */
export function toRouteSettings(
  doc: LoadedApiDocument,
  api: Partial<RawApi>,
  options: ToRouteSettingsOptions,
): ApiRoute[] {
  const { routes, issues } = documentRoutes(
    doc,
    { document: doc.file, base_path: '', operations: {}, ...api },
    options,
  );
  if (issues.length > 0) throw new ApiDocumentError(issues);
  return routes.map(({ raw, operation }, index) => {
    const template = raw.path as string;
    const router = toRouterPath(template);
    if ('error' in router)
      throw new ApiDocumentError([
        { file: doc.file, pointer: operation.source.pointer, message: router.error },
      ]);
    const methods = [...(raw.methods as string[])];
    if (methods.includes('GET')) methods.push('HEAD');
    const auth =
      raw.auth === 'none' ? 'none' : ((raw.auth as AuthMethod[] | undefined) ?? options.authMethods);
    const limit = raw.body_limit;
    // Asserted, not annotated: fields other features add to RouteSettings come from their own compilers.
    const settings = {
      index,
      name: raw.name as string,
      template,
      routerPath: router.path,
      params: router.params,
      methods,
      upstream: raw.upstream as string,
      auth,
      apiKeyInQuery: raw.api_key_in_query === true,
      bodyLimit:
        limit === 'none'
          ? Number.POSITIVE_INFINITY
          : typeof limit === 'string'
            ? parseSize(limit)
            : (options.bodyLimit ?? 1024 * 1024),
      cacheControl: typeof raw.cache_control === 'string' ? raw.cache_control : 'no-store',
      cors: undefined,
      authorize: raw.authorize,
    } as unknown as RouteSettings;
    try {
      return {
        ...settings,
        ...compileRouteApi(raw as RawRouteApi, { template, methods }, { [operation.method]: operation }),
      };
    } catch (err) {
      if (err instanceof RouteApiError) {
        throw new RouteApiError(
          err.issues.map((i) => ({ path: `${operation.id}.${i.path}`, message: i.message })),
        );
      }
      throw err;
    }
  });
}

/** A route as written in the config's `routes`, compiled, described by `doc` where it matches an operation. */
export interface ConfigRouteInput extends RawRouteApi {
  path: string;
  methods: string[];
  upstream: string;
  name?: string;
  auth?: 'none' | AuthMethod[];
  body_limit?: string;
}

/** Compiles one config route (for tests and tools), with the document's operations that describe it. */
export function configRoute(
  raw: ConfigRouteInput,
  index: number,
  doc?: LoadedApiDocument,
  basePath = '',
): ApiRoute {
  const router = toRouterPath(raw.path);
  if ('error' in router) throw new RouteApiError([{ path: 'path', message: router.error }]);
  const methods = [...raw.methods];
  if (methods.includes('GET') && !methods.includes('HEAD')) methods.push('HEAD');
  const settings = {
    index,
    name: raw.name ?? `${raw.methods.join(',')} ${raw.path}`,
    template: raw.path,
    routerPath: router.path,
    params: router.params,
    methods,
    upstream: raw.upstream,
    auth: raw.auth ?? 'none',
    apiKeyInQuery: false,
    bodyLimit: raw.body_limit === undefined ? 1024 * 1024 : parseSize(raw.body_limit),
    cacheControl: 'no-store',
    cors: undefined,
    authorize: undefined,
  } as unknown as RouteSettings;
  const operations = doc === undefined ? {} : matchOperations(doc, raw.path, methods, basePath);
  // The document's extensions for the settings compiled here apply as the config loader applies them.
  const ext = applyExtensions(raw as unknown as Record<string, unknown>, operations, API_SECTIONS);
  if (ext.issues.length > 0) throw new ApiDocumentError([...ext.issues]);
  return {
    ...settings,
    ...compileRouteApi(ext.raw as RawRouteApi, { template: raw.path, methods }, operations),
  };
}
