/**
 * The AI Computer Sandbox meter: the current notebook's (or console's) sandbox memory and CPU
 * against its limits, in JupyterLab's status bar, and a plain notice when the kernel was
 * killed for exceeding its memory limit.
 *
 * It reads `GET <base_url>ai-computer/sandboxes/<kernel_id>` from the ai-computer server
 * extension (ai_computer/server_extension.py), which answers 404 for kernels that are no
 * sandboxes: the meter then stays hidden.
 */

import {
  ILabShell,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ISessionContext, Notification } from '@jupyterlab/apputils';
import { URLExt } from '@jupyterlab/coreutils';
import { Kernel, ServerConnection } from '@jupyterlab/services';
import { IStatusBar } from '@jupyterlab/statusbar';
import { ISignal, Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

/** A sandbox kernel's report, as the server extension sends it. */
interface ISandboxReport {
  kernel_id: string;
  running: boolean;
  memory: { used: number | null; limit: number };
  cpu: { used: number | null; limit: number };
  uptime: number | null;
  oom_killed: boolean;
  last_exit: {
    container_id: string;
    exit_code: number | null;
    oom_killed: boolean;
    reason: string;
  } | null;
  error: string | null;
}

/** How often the meter asks while a sandbox kernel is current (a reading takes ~1 s). */
const REFRESH_MS = 3000;
/** Memory use, as a share of the limit, from which the meter turns to the warning colour. */
const HIGH_MEMORY = 0.8;

function formatBytes(bytes: number): string {
  const mib = bytes / (1024 * 1024);
  return mib >= 1024 ? `${(mib / 1024).toFixed(1)} GB` : `${Math.round(mib)} MB`;
}

function formatCores(cores: number): string {
  return cores >= 10 || Number.isInteger(cores) ? `${cores}` : cores.toFixed(2);
}

function formatDuration(seconds: number): string {
  if (seconds < 60) {
    return `${Math.round(seconds)} s`;
  }
  if (seconds < 3600) {
    return `${Math.round(seconds / 60)} min`;
  }
  return `${(seconds / 3600).toFixed(1)} h`;
}

/** The message a user reads when their kernel was killed by the memory limit. */
function oomMessage(report: ISandboxReport): string {
  return (
    `Out of memory: the sandbox's kernel went over its ${formatBytes(report.memory.limit)} ` +
    'limit, was killed and restarted. Variables are lost; files in /workspace are kept.'
  );
}

/** The status-bar widget; it follows the session context of the current widget. */
class SandboxMeter extends Widget {
  constructor(serverSettings: ServerConnection.ISettings) {
    super();
    this._serverSettings = serverSettings;
    this.addClass('jp-AiComputerMeter');
    this.node.innerHTML =
      '<span class="jp-AiComputerMeter-label">Sandbox</span>' +
      '<span class="jp-AiComputerMeter-bar"><span class="jp-AiComputerMeter-fill"></span></span>' +
      '<span class="jp-AiComputerMeter-text">…</span>';
    this._fill = this.node.querySelector('.jp-AiComputerMeter-fill') as HTMLElement;
    this._text = this.node.querySelector('.jp-AiComputerMeter-text') as HTMLElement;
    this._timer = window.setInterval(() => void this.refresh(), REFRESH_MS);
  }

  /** Whether the current kernel is a sandbox (the status bar shows the meter only then). */
  get isSandbox(): boolean {
    return this._isSandbox;
  }

  /** Emitted when `isSandbox` changes. */
  get activeStateChanged(): ISignal<this, void> {
    return this._activeStateChanged;
  }

  /** Follow this session context (null: none is current). */
  follow(context: ISessionContext | null): void {
    if (context === this._context) {
      return;
    }
    this._context?.statusChanged.disconnect(this._onStatus, this);
    this._context?.kernelChanged.disconnect(this._onKernelChanged, this);
    this._context = context;
    context?.statusChanged.connect(this._onStatus, this);
    context?.kernelChanged.connect(this._onKernelChanged, this);
    void this.refresh();
  }

  /** Ask the server for the current kernel's report and show it. */
  async refresh(): Promise<void> {
    const kernel = this._context?.session?.kernel ?? null;
    if (kernel === null || document.hidden) {
      this._setSandbox(kernel !== null && this._isSandbox);
      return;
    }
    const url = URLExt.join(
      this._serverSettings.baseUrl,
      'ai-computer',
      'sandboxes',
      encodeURIComponent(kernel.id)
    );
    let response: Response;
    try {
      response = await ServerConnection.makeRequest(url, {}, this._serverSettings);
    } catch (error) {
      this._showUnavailable('the server does not answer');
      return;
    }
    if (kernel !== (this._context?.session?.kernel ?? null)) {
      return; // the user switched kernels meanwhile; a newer refresh is on its way
    }
    if (response.status === 404) {
      this._setSandbox(false); // not a sandbox kernel
      return;
    }
    if (!response.ok) {
      this._showUnavailable(`the server answered ${response.status}`);
      return;
    }
    this._show((await response.json()) as ISandboxReport);
  }

  dispose(): void {
    window.clearInterval(this._timer);
    this.follow(null);
    super.dispose();
  }

  private _show(report: ISandboxReport): void {
    this._setSandbox(true);
    const { memory, cpu } = report;
    const share = memory.used !== null && memory.limit ? memory.used / memory.limit : 0;
    this._fill.style.width = `${Math.min(100, Math.round(share * 100))}%`;
    this.toggleClass('jp-mod-high', share >= HIGH_MEMORY);
    this.toggleClass('jp-mod-oom', report.oom_killed);
    const usage =
      memory.used === null
        ? `Mem – / ${formatBytes(memory.limit)} · CPU – / ${formatCores(cpu.limit)}`
        : `Mem ${formatBytes(memory.used)} / ${formatBytes(memory.limit)} · ` +
          `CPU ${formatCores(cpu.used ?? 0)} / ${formatCores(cpu.limit)}`;
    this._text.textContent = report.oom_killed ? `Out of memory: restarted · ${usage}` : usage;
    const lines = [
      'AI Computer Sandbox',
      `Memory: ${memory.used === null ? '–' : formatBytes(memory.used)} of ` +
        `${formatBytes(memory.limit)}`,
      `CPU: ${cpu.used === null ? '–' : formatCores(cpu.used)} of ${formatCores(cpu.limit)} cores`
    ];
    if (report.uptime !== null) {
      lines.push(`Kernel up for ${formatDuration(report.uptime)}`);
    }
    if (report.last_exit) {
      lines.push(`Last restart: ${report.last_exit.reason}`);
    }
    if (report.error) {
      lines.push(`Usage unavailable: ${report.error}`);
    }
    this.node.title = lines.join('\n');
    if (report.oom_killed && report.last_exit) {
      const key = `${report.kernel_id}:${report.last_exit.container_id}`;
      if (!this._announced.has(key)) {
        this._announced.add(key);
        Notification.error(oomMessage(report), { autoClose: false });
      }
    }
  }

  private _showUnavailable(why: string): void {
    this._text.textContent = 'usage unavailable';
    this.node.title = `AI Computer Sandbox: usage unavailable (${why})`;
  }

  private _setSandbox(isSandbox: boolean): void {
    if (isSandbox !== this._isSandbox) {
      this._isSandbox = isSandbox;
      this._activeStateChanged.emit();
    }
  }

  private _onStatus(_: ISessionContext, status: Kernel.Status): void {
    // A restart or a death is news the user should see now, not at the next tick.
    if (status === 'restarting' || status === 'autorestarting' || status === 'dead') {
      void this.refresh();
    }
  }

  private _onKernelChanged(): void {
    void this.refresh();
  }

  private _serverSettings: ServerConnection.ISettings;
  private _context: ISessionContext | null = null;
  private _isSandbox = false;
  private _activeStateChanged = new Signal<this, void>(this);
  private _announced = new Set<string>();
  private _fill: HTMLElement;
  private _text: HTMLElement;
  private _timer: number;
}

function sessionContextOf(widget: Widget | null): ISessionContext | null {
  // Notebooks and consoles both carry a session context.
  const candidate = (widget as { sessionContext?: ISessionContext } | null)?.sessionContext;
  return candidate && 'statusChanged' in candidate ? candidate : null;
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'ai-computer-jupyterlab:sandbox-meter',
  description: 'Shows the AI Computer Sandbox memory and CPU use against its limits.',
  autoStart: true,
  requires: [IStatusBar, ILabShell],
  activate: (app: JupyterFrontEnd, statusBar: IStatusBar, shell: ILabShell) => {
    const meter = new SandboxMeter(app.serviceManager.serverSettings);
    statusBar.registerStatusItem(plugin.id, {
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

export default plugin;
