// Unit tests of extension.js outside VS Code: `vscode` and `vscode-languageclient/node`
// are replaced by stubs that record what the extension asks of them.
"use strict";
const test = require("node:test");
const assert = require("node:assert");
const fs = require("fs");
const os = require("os");
const path = require("path");
const Module = require("module");

// `extension.js` requires its dependencies lazily (inside activate), so the stubs stay
// installed for the whole test process; each test swaps in its own set.
let currentStubs = {};
const originalLoad = Module._load;
Module._load = function (request, parent, isMain) {
  if (request in currentStubs) return currentStubs[request];
  return originalLoad.call(this, request, parent, isMain);
};

function load(stubs) {
  currentStubs = stubs;
  const file = require.resolve("../extension.js");
  delete require.cache[file];
  return require(file);
}

function makeStubs(config) {
  const record = { warnings: [], clients: [], commands: [] };
  class LanguageClient {
    constructor(id, name, server, clientOptions) {
      Object.assign(this, { id, name, server, clientOptions, started: false });
      record.clients.push(this);
    }
    async start() { this.started = true; }
    async stop() { this.started = false; }
  }
  const vscode = {
    workspace: {
      getConfiguration: () => ({ get: (key, dflt) => (key in config ? config[key] : dflt) }),
      createFileSystemWatcher: (glob) => ({ glob }),
    },
    window: { showWarningMessage: (m) => record.warnings.push(m) },
    commands: { registerCommand: (name, fn) => { record.commands.push(name); return { name, fn }; } },
  };
  const lc = { LanguageClient, TransportKind: { stdio: 0 } };
  return { record, stubs: { vscode, "vscode-languageclient/node": lc } };
}

function fakeKflow() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "kflow-ext-"));
  const exe = path.join(dir, "kflow");
  fs.writeFileSync(exe, "#!/bin/sh\nexit 0\n");
  fs.chmodSync(exe, 0o755);
  return { dir, exe };
}

test("starts `kflow lsp` over stdio when kflow is on PATH", async () => {
  const { dir, exe } = fakeKflow();
  const { record, stubs } = makeStubs({});
  const ext = load(stubs);
  const oldPath = process.env.PATH;
  process.env.PATH = dir + path.delimiter + oldPath;
  try {
    const context = { subscriptions: [] };
    await ext.activate(context);
    assert.strictEqual(record.clients.length, 1);
    const c = record.clients[0];
    assert.strictEqual(c.server.command, exe);
    assert.deepStrictEqual(c.server.args, ["lsp"]);
    assert.ok(c.started);
    assert.deepStrictEqual(c.clientOptions.documentSelector[0], { scheme: "file", language: "kflow" });
    assert.deepStrictEqual(record.commands, ["kflow.restartServer"]);
    assert.strictEqual(record.warnings.length, 0);
    await ext.deactivate();
    assert.ok(!c.started);
  } finally {
    process.env.PATH = oldPath;
  }
});

test("only warns when kflow cannot be found", async () => {
  const { record, stubs } = makeStubs({ "server.path": "kflow-definitely-missing" });
  const ext = load(stubs);
  await ext.activate({ subscriptions: [] });
  assert.strictEqual(record.clients.length, 0);
  assert.strictEqual(record.warnings.length, 1);
  assert.match(record.warnings[0], /not found/);
});

test("server can be disabled", async () => {
  const { record, stubs } = makeStubs({ "server.enable": false });
  const ext = load(stubs);
  await ext.activate({ subscriptions: [] });
  assert.strictEqual(record.clients.length, 0);
  assert.strictEqual(record.warnings.length, 0);
});

test("findExecutable resolves absolute paths and PATH entries", () => {
  const { dir, exe } = fakeKflow();
  const { stubs } = makeStubs({});
  const ext = load(stubs);
  assert.strictEqual(ext.findExecutable(exe), exe);
  assert.strictEqual(ext.findExecutable("kflow", { PATH: dir }), exe);
  assert.strictEqual(ext.findExecutable("kflow", { PATH: "" }), null);
  assert.strictEqual(ext.findExecutable(path.join(dir, "nope")), null);
});
