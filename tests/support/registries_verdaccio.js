// Starts verdaccio (tests/npm/node_modules) from a config file on 127.0.0.1, on a free
// port chosen by the kernel, and prints "listening on http://127.0.0.1:PORT".
// usage: node registries_verdaccio.js CONFIG.yaml [PORT_FILE]
// Exits when its parent dies (the test run ended), so it never outlives the suite.
'use strict';
const fs = require('fs');
const path = require('path');
const root = path.join(__dirname, '..', 'npm', 'node_modules');
const { runServer } = require(path.join(root, 'verdaccio'));

async function main() {
  const [config, portFile] = process.argv.slice(2);
  const app = await runServer(path.resolve(config));
  const server = app.listen(0, '127.0.0.1', () => {
    const port = server.address().port;
    if (portFile) {
      fs.writeFileSync(portFile + '.tmp', port + '\n');
      fs.renameSync(portFile + '.tmp', portFile);
    }
    process.stdout.write('listening on http://127.0.0.1:' + port + '\n');
  });
  server.keepAliveTimeout = 60000;
  const parent = process.ppid;
  setInterval(() => { if (process.ppid !== parent) process.exit(0); }, 500).unref();
}
main().catch((e) => { console.error('verdaccio: ' + (e && e.stack || e)); process.exit(1); });
