/**
 * Socket timeouts (issue 11 item 9). fastify leaves `requestTimeout` at 0, so a client that sends
 * headers and part of a body and then goes silent held its socket (and a parser, and the bytes so far)
 * for ever. Node's own checks are used:
 *
 * - `requestTimeout` (REQUEST_TIMEOUT_SECONDS): the whole request, headers and body, must arrive
 *   within it; else 408 and the socket is closed. It stops counting once the body is in, so long work
 *   in the workers is not cut.
 * - `headersTimeout`: the headers alone, at most 60 s (never more than `requestTimeout`).
 * - `keepAliveTimeout` (KEEP_ALIVE_TIMEOUT_SECONDS): how long an idle keep-alive socket stays open
 *   between requests.
 *
 * Node checks the first two every `connectionsCheckingInterval` (30 s by default, far coarser than a
 * short timeout): it is set to a tenth of the timeout here. Node reads these options when the server
 * is created, so they go through fastify's `http` option as well as its own `requestTimeout`.
 */
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyServerOptions } from 'fastify';
import type { Config } from '../config.js';
import { problem } from '../problem.js';

/** Node's default headers timeout, kept as the cap. */
const HEADERS_TIMEOUT_MS = 60_000;

/** The fastify options that set the timeouts from `config`. */
export function timeoutOptions(
  config: Pick<Config, 'requestTimeoutSeconds' | 'keepAliveTimeoutSeconds'>,
): Pick<FastifyServerOptions, 'requestTimeout' | 'keepAliveTimeout' | 'clientErrorHandler'> & {
  http: { requestTimeout: number; headersTimeout: number; connectionsCheckingInterval: number };
} {
  const requestTimeout = Math.round(config.requestTimeoutSeconds * 1000);
  const headersTimeout =
    requestTimeout > 0 ? Math.min(HEADERS_TIMEOUT_MS, requestTimeout) : HEADERS_TIMEOUT_MS;
  const connectionsCheckingInterval = Math.min(30_000, Math.max(50, Math.round(headersTimeout / 10)));
  return {
    requestTimeout,
    keepAliveTimeout: Math.round(config.keepAliveTimeoutSeconds * 1000),
    http: { requestTimeout, headersTimeout, connectionsCheckingInterval },
    clientErrorHandler,
  };
}

/**
 * Answers errors Node raises before a request reaches fastify (a timeout, a malformed request line,
 * headers too large) with a problem+json body, like every other error, then closes the socket.
 */
function clientErrorHandler(err: Error & { code?: string }, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const status =
    err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : err.code === 'HPE_HEADER_OVERFLOW' ? 431 : 400;
  const detail =
    status === 408
      ? 'the request (headers and body) did not arrive within REQUEST_TIMEOUT_SECONDS; the connection is closed'
      : status === 431
        ? 'the request headers are too large'
        : 'the request is not valid HTTP/1.1';
  const body = JSON.stringify(problem(status, detail));
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\n` +
        `Content-Type: application/problem+json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
  }
  socket.destroy();
}
