// Benchmark server process: the interop service on ttrpc-ts, on the socket given as argv[2].
import { Server } from 'ttrpc-ts';
import { registerPeerService } from '../test/interop/ttrpc/ts-peer.js';

const server = new Server();
registerPeerService(server);
await server.listen(process.argv[2]);
process.stdout.write('ready\n');
process.on('SIGTERM', () => {
  server.close();
  process.exit(0);
});
