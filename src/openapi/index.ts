/**
 * The API description as the gateway's contract: what the config loader
 * and the pipeline use.
 */
export type { Check } from './ajv.js';
export { ApiDocumentError, type LoadedApiDocument, loadApiDocument } from './document.js';
export { INPUT_ERRORS, InputError, MAX_PROBLEM_ITEMS, type ProblemItem } from './errors.js';
export { type ApiRoute, configRoute, toRouteSettings } from './route-settings.js';
export {
  applyExtensions,
  authFromSecurity,
  type ConfigRouteExtensions,
  type DocumentRoute,
  type DocumentRoutesOptions,
  documentRoutes,
  type ExtensionOverride,
  extensionIssues,
  matchOperations,
  type RouteKeyOrigin,
  sameValue,
} from './routes.js';
export {
  ApiSchema,
  InspectionSchema,
  type RawApi,
  type RawRouteApi,
  ResponsesSchema,
  RouteApiProperties,
  ValidationSchema,
} from './schema.js';
export {
  type ApiRouteSettings,
  compileInspection,
  compileResponses,
  compileRouteApi,
  compileValidation,
  type InspectionSettings,
  type ResponseSettings,
  RouteApiError,
  type RouteApiIssue,
  type ValidationSettings,
} from './settings.js';
export type { ApiDocumentIssue, CompiledOperation, SecurityRequirement } from './types.js';
