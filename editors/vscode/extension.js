// kflow for VS Code: the grammar, snippets and language configuration are declarative
// (package.json); this file only starts the kflow language server (`kflow lsp`) over
// stdio when the `kflow` executable can be found.
"use strict";

const fs = require("fs");
const path = require("path");

let client = null;

/** Resolve `command` to an executable file: an absolute/relative path, or a PATH lookup. */
function findExecutable(command, env) {
  env = env || process.env;
  if (!command) return null;
  const isWin = process.platform === "win32";
  const exts = isWin ? (env.PATHEXT || ".EXE;.CMD;.BAT").split(";").concat([""]) : [""];
  const isFile = (p) => {
    try {
      const st = fs.statSync(p);
      if (!st.isFile()) return false;
      if (!isWin) fs.accessSync(p, fs.constants.X_OK);
      return true;
    } catch (_) {
      return false;
    }
  };
  if (command.includes("/") || command.includes("\\")) {
    for (const ext of exts) if (isFile(command + ext)) return command + ext;
    return null;
  }
  const dirs = (env.PATH || "").split(path.delimiter).filter(Boolean);
  for (const dir of dirs) {
    for (const ext of exts) {
      const candidate = path.join(dir, command + ext);
      if (isFile(candidate)) return candidate;
    }
  }
  return null;
}

function serverOptions(vscode) {
  const cfg = vscode.workspace.getConfiguration("kflow");
  const command = cfg.get("server.path", "kflow");
  const args = cfg.get("server.args", ["lsp"]);
  const resolved = findExecutable(command);
  return { command, resolved, args };
}

async function startClient(vscode, context) {
  const { LanguageClient, TransportKind } = require("vscode-languageclient/node");
  const opts = serverOptions(vscode);
  if (!opts.resolved) {
    vscode.window.showWarningMessage(
      `kflow: \`${opts.command}\` was not found, so only syntax highlighting and snippets ` +
        "are active. Install the toolchain (`pip install kailash-dsl`) or set " +
        "`kflow.server.path` to the kflow executable."
    );
    return null;
  }
  const server = { command: opts.resolved, args: opts.args, transport: TransportKind.stdio };
  const clientOptions = {
    documentSelector: [
      { scheme: "file", language: "kflow" },
      { scheme: "untitled", language: "kflow" },
    ],
    synchronize: {
      fileEvents: vscode.workspace.createFileSystemWatcher("**/*.kflow"),
    },
  };
  const c = new LanguageClient("kflow", "kflow language server", server, clientOptions);
  await c.start();
  return c;
}

async function activate(context) {
  const vscode = require("vscode");
  context.subscriptions.push(
    vscode.commands.registerCommand("kflow.restartServer", async () => {
      if (client) await client.stop();
      client = await startClient(vscode, context);
    })
  );
  const cfg = vscode.workspace.getConfiguration("kflow");
  if (!cfg.get("server.enable", true)) return;
  client = await startClient(vscode, context);
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate, findExecutable };
