/** The error responses every `/v1` work route can give (problem+json), for the OpenAPI document. */
import { problemResponse } from '../../../src/http/openapi.js';

/** Error responses every work route can give. */
export const workErrorResponses = {
  400: problemResponse('invalid input; `errors` names the field and what was expected'),
  401: problemResponse('missing or wrong API key (only when API_KEY is set)'),
  413: problemResponse('body, image, boxes, output or estimated work (MAX_WORK) over a limit'),
  415: problemResponse('unsupported content type or image format'),
  503: problemResponse('the work queue is full: retry after `Retry-After` seconds'),
  504: problemResponse('the request ran longer than TASK_TIMEOUT_SECONDS in its worker and was stopped'),
};
