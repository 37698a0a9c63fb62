// Starts verdaccio (tests/npm/node_modules) from a config file on 127.0.0.1, on a free
// port chosen by the kernel, and prints "listening on http://127.0.0.1:PORT".
// usage: node registries_verdaccio.js CONFIG.yaml [PORT_FILE [CONTROL_DIR]]
// With CONTROL_DIR, every request is logged to CONTROL_DIR/requests.log as "METHOD URL STATUS"
// (so a spec counts publishes on the registry's side), and CONTROL_DIR/faults.json, when it
// exists, is read at each request: [{"method": "PUT", "prefix": "/name", "status": 503,
// "count": 1}, ...]: a matching request is answered with that status by this wrapper (the
// registry never sees it) and its count goes down.
// Exits when its parent dies (the test run ended), so it never outlives the suite.
'use strict';
const fs = require('fs');
const path = require('path');
const root = path.join(__dirname, '..', 'npm', 'node_modules');
const { runServer } = require(path.join(root, 'verdaccio'));

async function main() {
  const [config, portFile, control] = process.argv.slice(2);
  const app = await runServer(path.resolve(config));  // an http.Server
  const inner = app.listeners('request');
  const serve = (req, res) => inner.forEach((l) => l.call(app, req, res));
  const handler = (req, res) => {
    const log = path.join(control, 'requests.log');
    const fpath = path.join(control, 'faults.json');
    let faults = [];
    try { faults = JSON.parse(fs.readFileSync(fpath, 'utf8')); } catch (e) { faults = []; }
    const f = faults.find((x) => x.count > 0 && (!x.method || x.method === req.method) &&
      decodeURIComponent(req.url).startsWith(x.prefix || '/'));
    if (f) {
      f.count -= 1;
      fs.writeFileSync(fpath + '.tmp', JSON.stringify(faults));
      fs.renameSync(fpath + '.tmp', fpath);
      fs.appendFileSync(log, req.method + ' ' + decodeURIComponent(req.url) + ' ' + f.status + ' injected\n');
      req.resume();
      res.writeHead(f.status, { 'Content-Type': 'application/json', Connection: 'close' });
      res.end(JSON.stringify({ error: 'injected failure' }));
      return;
    }
    res.on('finish', () => fs.appendFileSync(log, req.method + ' ' + decodeURIComponent(req.url) + ' ' + res.statusCode + '\n'));
    serve(req, res);
  };
  if (control) {
    app.removeAllListeners('request');
    app.on('request', handler);
  }
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
