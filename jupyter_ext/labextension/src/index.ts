/**
 * The AI Computer Sandbox in JupyterLab: a status-bar meter of the current sandbox's memory,
 * CPU and disk (meter.ts) and a "Sandbox files" side panel for its /workspace (files.ts). Both
 * follow the current notebook or console, and read the ai-computer server extension
 * (ai_computer/jupyter/).
 */

import {
  ILabShell,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import { IStatusBar } from '@jupyterlab/statusbar';

import { SandboxAPI, sessionContextOf } from './api';
import { SandboxFilesPanel, acceptDropsOnBrowser } from './files';
import { SandboxMeter } from './meter';

const meterPlugin: JupyterFrontEndPlugin<void> = {
  id: 'ai-computer-jupyterlab:sandbox-meter',
  description: 'Shows the AI Computer Sandbox memory, CPU and disk use against its limits.',
  autoStart: true,
  requires: [IStatusBar, ILabShell],
  activate: (app: JupyterFrontEnd, statusBar: IStatusBar, shell: ILabShell) => {
    const meter = new SandboxMeter(new SandboxAPI(app.serviceManager.serverSettings));
    statusBar.registerStatusItem(meterPlugin.id, {
      item: meter,
      align: 'left',
      rank: 4,
      isActive: () => meter.isSandbox,
      activeStateChanged: meter.activeStateChanged
    });
    const followCurrent = () => meter.follow(sessionContextOf(shell.currentWidget));
    shell.currentChanged.connect(followCurrent);
    followCurrent();
  }
};

const filesPlugin: JupyterFrontEndPlugin<void> = {
  id: 'ai-computer-jupyterlab:sandbox-files',
  description: "A side panel with the files of the current notebook's AI Computer Sandbox.",
  autoStart: true,
  requires: [ILabShell],
  optional: [IDefaultFileBrowser],
  activate: (app: JupyterFrontEnd, shell: ILabShell, browser: IDefaultFileBrowser | null) => {
    const api = new SandboxAPI(app.serviceManager.serverSettings);
    const panel = new SandboxFilesPanel(api, browser);
    // On the right, so that it and the host's file browser (left) are seen side by side.
    shell.add(panel, 'right', { rank: 150 });
    if (browser) {
      acceptDropsOnBrowser(browser, api);
    }
    // The main area's current notebook or console (the panel itself never becomes current);
    // an editor or the launcher in front leaves the panel on the last one until it closes.
    const followCurrent = () => {
      const context = sessionContextOf(shell.currentWidget);
      if (context) {
        panel.follow(context);
      }
    };
    shell.currentChanged.connect(followCurrent);
    followCurrent();
    app.commands.addCommand('ai-computer:show-sandbox-files', {
      label: 'Show Sandbox Files',
      execute: () => shell.activateById(panel.id)
    });
  }
};

export default [meterPlugin, filesPlugin];
