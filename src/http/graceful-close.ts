/**
 * Closing without cutting answers short: what `app.close()` does to the sockets, so that a SIGTERM
 * (`src/main.ts`) drains the requests in flight and every answer already begun reaches its client.
 */
import type { Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';

/**
 * Installs the close behaviour on `app`:
 * - close() sweeps idle keep-alive sockets once, when it starts. A socket whose request is in flight
 *   then would stay open after its answer (for keepAliveTimeout, 72 s) and hold the shutdown past
 *   SIGKILL (fastify/fastify#7044): answers sent while closing carry `Connection: close`, so Node ends
 *   each such socket once its response is flushed.
 * - That sweep (Node's `closeIdleConnections`, run by fastify's close and again by `server.close()`)
 *   destroys every socket with no request in flight, including one whose last response has ended but
 *   whose bytes still sit in the socket's buffer because the client reads slowly: the answer would be
 *   truncated. Such sockets are ended instead (half-closed); the server's close, and so the process
 *   exit, waits for the client to close them. A socket with a request in flight is handled the same
 *   way as soon as its answer is out.
 */
export function gracefulClose(app: FastifyInstance): void {
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onSend', async (_request, reply, payload) => {
    if (closing) reply.header('Connection', 'close');
    return payload;
  });
  const server = app.server;
  const openSockets = new Set<Socket>();
  const socketsInFlight = new Set<Socket>();
  let sweeping = false;
  const closeIfIdle = (socket: Socket): void => {
    if (socketsInFlight.has(socket)) return;
    // Never answered anything: nothing to lose.
    if (socket.bytesWritten === 0) socket.destroy();
    // FIN goes out after the buffered bytes; the socket closes when the client, having read them all,
    // closes its side. Destroying earlier loses what sits in kernel buffers once a container's network
    // goes away. A client that never closes is cut by the shutdown grace period.
    else socket.end();
  };
  server.on('connection', (socket: Socket) => {
    openSockets.add(socket);
    socket.once('close', () => openSockets.delete(socket));
  });
  server.on('request', (req, res) => {
    socketsInFlight.add(req.socket);
    res.once('close', () => {
      socketsInFlight.delete(req.socket);
      // An answer that began before the close keeps its socket alive: end it once the answer is out.
      if (sweeping) closeIfIdle(req.socket);
    });
  });
  server.closeIdleConnections = () => {
    sweeping = true;
    for (const socket of openSockets) closeIfIdle(socket);
  };
}
