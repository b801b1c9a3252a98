/**
 * Typed errors. Everything below the HTTP layer throws these; the one error handler in
 * `src/server.ts` maps `status` to an RFC 9457 problem response. Anything else is a bug (500).
 * Kept free of fastify so pure modules (`src/ops/`) can throw them.
 */
export class RoiServeError extends Error {
  /** HTTP status the error handler uses. */
  readonly status: number;
  /** Path of the offending field, e.g. `boxes[3][2]` or `features.shape`; empty when not about a field. */
  readonly field: string;
  /** What was expected there, in words, e.g. `a finite number`. */
  readonly expected: string;

  constructor(status: number, message: string, field = '', expected = '') {
    super(message);
    this.name = new.target.name;
    this.status = status;
    this.field = field;
    this.expected = expected;
  }
}

/** 400: the request is well-formed but a value is wrong. */
export class InvalidInputError extends RoiServeError {
  constructor(message: string, field = '', expected = '') {
    super(400, message, field, expected);
  }
}

/** 413: a size limit (body, pixels, boxes, output values) was exceeded. */
export class TooLargeError extends RoiServeError {
  constructor(message: string, field = '', expected = '') {
    super(413, message, field, expected);
  }
}

/** 415: unsupported content type or image format. */
export class UnsupportedMediaError extends RoiServeError {
  constructor(message: string, field = '', expected = '') {
    super(415, message, field, expected);
  }
}

/** 503: the work queue is full; `retryAfterSeconds` goes into `Retry-After`. */
export class BusyError extends RoiServeError {
  readonly retryAfterSeconds: number;
  constructor(message: string, retryAfterSeconds = 1) {
    super(503, message);
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/**
 * 499 (nginx's "client closed request"): the work was stopped because the client went away. Nobody
 * reads the answer; the status shows up in logs and metrics. The kernels throw it (no reason known
 * there); the pool sorts out the reason from the task's cancel flag.
 */
export class CancelledError extends RoiServeError {
  constructor(message = 'the work was cancelled: the client closed the connection') {
    super(499, message);
  }
}

/** 504: the task ran past `TASK_TIMEOUT_SECONDS` in its worker and was stopped. */
export class TaskTimeoutError extends RoiServeError {
  constructor(message: string) {
    super(504, message, 'boxes', 'less work per request: fewer boxes, a smaller outputSize or samplingRatio');
  }
}
