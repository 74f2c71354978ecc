/**
 * The AI Computer Sandbox meter: the current notebook's (or console's) sandbox memory, CPU and
 * disk (/workspace) against their limits, in JupyterLab's status bar, and a plain notice when
 * the kernel was killed for exceeding its memory limit.
 *
 * It reads `GET <base_url>ai-computer/sandboxes/<kernel_id>` from the ai-computer server
 * extension (ai_computer/jupyter/server_extension.py), which answers 404 for kernels that are
 * no sandboxes: the meter then stays hidden.
 */

import { ISessionContext, Notification } from '@jupyterlab/apputils';
import { Kernel } from '@jupyterlab/services';
import { ISignal, Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

import { ISandboxReport, SandboxAPI, formatBytes, formatMegabytes } from './api';

/** How often the meter asks while a sandbox kernel is current (a reading takes ~1 s). */
const REFRESH_MS = 3000;
/** Memory use, as a share of the limit, from which the meter turns to the warning colour. */
const HIGH_MEMORY = 0.8;

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
    `Out of memory: the sandbox's kernel went over its ${formatMegabytes(report.memory.limit)} ` +
    'limit, was killed and restarted. Variables are lost; files in /workspace are kept.'
  );
}

/** The status-bar widget; it follows the session context of the current widget. */
export class SandboxMeter extends Widget {
  constructor(api: SandboxAPI) {
    super();
    this._api = api;
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
    let response: Response;
    try {
      response = await this._api.report(kernel.id);
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
    const { memory, cpu, disk } = report;
    const share = memory.used !== null && memory.limit ? memory.used / memory.limit : 0;
    this._fill.style.width = `${Math.min(100, Math.round(share * 100))}%`;
    this.toggleClass('jp-mod-high', share >= HIGH_MEMORY);
    this.toggleClass('jp-mod-oom', report.oom_killed);
    const usage =
      memory.used === null
        ? `Mem – / ${formatMegabytes(memory.limit)} · CPU – / ${formatCores(cpu.limit)}`
        : `Mem ${formatMegabytes(memory.used)} / ${formatMegabytes(memory.limit)} · ` +
          `CPU ${formatCores(cpu.used ?? 0)} / ${formatCores(cpu.limit)}`;
    const diskText =
      disk && disk.used !== null
        ? ` · Disk ${formatBytes(disk.used)} / ${formatBytes(disk.limit)}`
        : '';
    this._text.textContent =
      (report.oom_killed ? `Out of memory: restarted · ${usage}` : usage) + diskText;
    const lines = [
      'AI Computer Sandbox',
      `Memory: ${memory.used === null ? '–' : formatMegabytes(memory.used)} of ` +
        `${formatMegabytes(memory.limit)}`,
      `CPU: ${cpu.used === null ? '–' : formatCores(cpu.used)} of ${formatCores(cpu.limit)} cores`
    ];
    if (disk) {
      lines.push(
        `Disk (/workspace): ${disk.used === null ? '–' : formatBytes(disk.used)} of ` +
          `${formatBytes(disk.limit)}`
      );
    }
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

  private _api: SandboxAPI;
  private _context: ISessionContext | null = null;
  private _isSandbox = false;
  private _activeStateChanged = new Signal<this, void>(this);
  private _announced = new Set<string>();
  private _fill: HTMLElement;
  private _text: HTMLElement;
  private _timer: number;
}
