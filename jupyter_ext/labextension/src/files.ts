/**
 * The "Sandbox files" side panel: the /workspace of the current notebook's (or console's)
 * sandbox, with sizes and times, folders, refresh (also after each cell), upload (a button, or
 * files dropped from the desktop, with progress), download, delete, new folder, and copies
 * between the sandbox and the host's file browser (drag a file from one to the other, or
 * "Copy to host folder").
 *
 * Everything goes through the server extension (ai_computer/jupyter/sandbox_files.py), which
 * runs every operation inside the sandbox, confined to /workspace. Names come from the
 * sandbox, so they are shown as text, never as markup.
 */

import { Dialog, ISessionContext, InputDialog, showDialog } from '@jupyterlab/apputils';
import { PathExt } from '@jupyterlab/coreutils';
import { IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import { Kernel } from '@jupyterlab/services';
import { LabIcon } from '@jupyterlab/ui-components';
import { MimeData } from '@lumino/coreutils';
import { Drag } from '@lumino/dragdrop';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { IEntry, IListing, RequestError, SandboxAPI, formatBytes } from './api';

/** JupyterLab's file browser drags its items with this (their paths). */
const CONTENTS_MIME = 'application/x-jupyter-icontents';
/** The panel drags its items with this: `{ kernelId, paths }`. */
export const SANDBOX_MIME = 'application/x-ai-computer-sandbox-files';
const WORKSPACE = '/workspace';
/** Refreshes after a cell wait this long for others (a run of cells is one refresh). */
const SETTLE_MS = 300;
/** How far the pointer moves on an item before it is dragged. */
const DRAG_THRESHOLD = 5;

export const sandboxFilesIcon = new LabIcon({
  name: 'ai-computer:sandbox-files',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" width="16" viewBox="0 0 24 24">' +
    '<path class="jp-icon3" fill="#616161" d="M3 6a2 2 0 0 1 2-2h5l2 2h7a2 2 0 0 1 2 2v10a2 ' +
    '2 0 0 1-2 2H5a2 2 0 0 1-2-2z"/>' +
    '<path fill="#fff" d="M12 9.2l3.6 2v4.1L12 17.3l-3.6-2v-4.1zm0 1.3l-2.3 1.2 2.3 1.3 2.3-1.3z' +
    'm-2.5 2.3v2l2 1.1v-2z"/></svg>'
});

/** What a drag from the panel carries. */
export interface ISandboxDrag {
  kernelId: string;
  paths: string[];
}

function formatTime(seconds: number): string {
  const date = new Date(seconds * 1000);
  const today = new Date().toDateString() === date.toDateString();
  return today
    ? date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
    : date.toLocaleDateString();
}

function element<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className: string,
  text = ''
): HTMLElementTagNameMap[K] {
  const made = document.createElement(tag);
  made.className = className;
  made.textContent = text;
  return made;
}

/** The panel. It follows a session context: `follow()` from the plugin. */
export class SandboxFilesPanel extends Widget {
  constructor(api: SandboxAPI, browser: IDefaultFileBrowser | null) {
    super();
    this._api = api;
    this._browser = browser;
    this.id = 'ai-computer-sandbox-files';
    this.addClass('jp-AiComputerFiles');
    this.title.icon = sandboxFilesIcon;
    this.title.caption = 'Sandbox files';
    const header = element('div', 'jp-AiComputerFiles-header');
    header.append(element('span', 'jp-AiComputerFiles-title', 'Sandbox files'));
    this._kernelLabel = element('span', 'jp-AiComputerFiles-kernel');
    header.append(this._kernelLabel);
    this._toolbar = element('div', 'jp-AiComputerFiles-toolbar');
    this._button('upload', 'Upload', 'Upload files from this computer', () => this._input.click());
    this._button('folder', 'New folder', 'Make a folder here', () => void this._newFolder());
    this._button('refresh', 'Refresh', 'List the folder again', () => void this.refresh());
    this._button('download', 'Download', 'Download the selected file', () => this._download());
    this._button(
      'to-host',
      'Copy to host folder',
      "Copy the selected file into the file browser's current folder",
      () => void this._copySelectedToHost()
    );
    this._button('delete', 'Delete', 'Delete the selected file or folder', () => void this._delete());
    this._input = element('input', 'jp-AiComputerFiles-input');
    this._input.type = 'file';
    this._input.multiple = true;
    this._input.addEventListener('change', () => {
      const files = Array.from(this._input.files ?? []);
      this._input.value = '';
      void this._uploadAll(files);
    });
    this._crumbs = element('div', 'jp-AiComputerFiles-crumbs');
    this._status = element('div', 'jp-AiComputerFiles-status');
    this._progress = element('div', 'jp-AiComputerFiles-progress');
    this._progress.append(element('div', 'jp-AiComputerFiles-progressFill'));
    this._notice = element('div', 'jp-AiComputerFiles-notice');
    const table = element('table', 'jp-AiComputerFiles-listing');
    const head = element('thead', '');
    const headRow = element('tr', '');
    headRow.append(
      element('th', 'jp-AiComputerFiles-name', 'Name'),
      element('th', 'jp-AiComputerFiles-size', 'Size'),
      element('th', 'jp-AiComputerFiles-modified', 'Modified')
    );
    head.append(headRow);
    this._rows = element('tbody', '');
    table.append(head, this._rows);
    this._body = element('div', 'jp-AiComputerFiles-body');
    this._body.append(table);
    this._disk = element('div', 'jp-AiComputerFiles-disk');
    this.node.append(
      header,
      this._toolbar,
      this._input,
      this._crumbs,
      this._status,
      this._progress,
      this._notice,
      this._body,
      this._disk
    );
    this._show();
  }

  /** The kernel the panel shows, if it is a sandbox's. */
  get kernelId(): string | null {
    return this._isSandbox ? (this._context?.session?.kernel?.id ?? null) : null;
  }

  /** Follow this session context (null: none is current). */
  follow(context: ISessionContext | null): void {
    if (context === this._context) {
      return;
    }
    this._context?.statusChanged.disconnect(this._onStatus, this);
    this._context?.kernelChanged.disconnect(this._onKernelChanged, this);
    this._context?.disposed.disconnect(this._onClosed, this);
    this._context = context;
    context?.statusChanged.connect(this._onStatus, this);
    context?.kernelChanged.connect(this._onKernelChanged, this);
    context?.disposed.connect(this._onClosed, this);
    this._folder = '';
    this._selected = null;
    this._listing = null;
    void this.refresh();
  }

  /** List the current folder again (and the disk). */
  async refresh(): Promise<void> {
    const kernel = this._context?.session?.kernel ?? null;
    this._kernelLabel.textContent = this._context
      ? `${this._context.name || this._context.path} · ${this._context.kernelDisplayName}`
      : '';
    if (kernel === null) {
      this._isSandbox = false;
      this._listing = null;
      this._show(
        this._context
          ? 'The active notebook or console has no kernel.'
          : 'Open a notebook or console on the "AI Computer Sandbox" kernel to see the files of its sandbox.'
      );
      return;
    }
    if (!this.isVisible) {
      this._stale = true;
      return;
    }
    this._stale = false;
    const folder = this._folder;
    let listing: IListing;
    try {
      listing = await this._api.list(kernel.id, this._absolute(folder));
    } catch (error) {
      if (kernel !== (this._context?.session?.kernel ?? null) || folder !== this._folder) {
        return; // the user moved on meanwhile; a newer refresh is on its way
      }
      const status = error instanceof RequestError ? error.status : 0;
      if (status === 404 && /sandbox kernel|Kernel does not exist/.test(String(error))) {
        this._isSandbox = false;
        this._listing = null;
        this._show(
          `The active kernel (${this._context?.kernelDisplayName}) is not an AI Computer ` +
            'Sandbox: its files are the host\'s, in the file browser.'
        );
        return;
      }
      if (status === 404 && folder) {
        this._folder = ''; // the folder went away: back to /workspace
        void this.refresh();
        return;
      }
      this._isSandbox = status !== 0 || this._isSandbox;
      this._show(`The sandbox's files cannot be listed now: ${(error as Error).message}`);
      return;
    }
    if (kernel !== (this._context?.session?.kernel ?? null) || folder !== this._folder) {
      return;
    }
    this._isSandbox = true;
    this._listing = listing;
    this._show();
  }

  dispose(): void {
    this.follow(null);
    super.dispose();
  }

  handleEvent(event: Event): void {
    switch (event.type) {
      case 'lm-dragenter':
      case 'lm-dragover':
        this._onDragOver(event as Drag.Event);
        break;
      case 'lm-dragleave':
        this.removeClass('jp-mod-dropTarget');
        break;
      case 'lm-drop':
        this._onDrop(event as Drag.Event);
        break;
      case 'dragover':
        this._onNativeDragOver(event as DragEvent);
        break;
      case 'dragleave':
        this.removeClass('jp-mod-dropTarget');
        break;
      case 'drop':
        this._onNativeDrop(event as DragEvent);
        break;
      case 'mousemove':
        this._onMouseMove(event as MouseEvent);
        break;
      case 'mouseup':
        this._pressed = null;
        document.removeEventListener('mousemove', this, true);
        document.removeEventListener('mouseup', this, true);
        break;
    }
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    for (const type of ['lm-dragenter', 'lm-dragleave', 'lm-dragover', 'lm-drop']) {
      this.node.addEventListener(type, this);
    }
    for (const type of ['dragover', 'dragleave', 'drop']) {
      this.node.addEventListener(type, this);
    }
  }

  protected onBeforeDetach(msg: Message): void {
    for (const type of ['lm-dragenter', 'lm-dragleave', 'lm-dragover', 'lm-drop']) {
      this.node.removeEventListener(type, this);
    }
    for (const type of ['dragover', 'dragleave', 'drop']) {
      this.node.removeEventListener(type, this);
    }
    super.onBeforeDetach(msg);
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    if (this._stale || this._listing === null) {
      void this.refresh();
    }
  }

  // -- showing ---------------------------------------------------------------------------

  private _button(action: string, label: string, title: string, run: () => void): void {
    const button = element('button', 'jp-AiComputerFiles-button', label);
    button.dataset.action = action;
    button.title = title;
    button.addEventListener('click', run);
    this._toolbar.append(button);
  }

  private _show(notice = ''): void {
    this._notice.textContent = notice;
    this._notice.style.display = notice ? '' : 'none';
    const listing = this._isSandbox ? this._listing : null;
    this._toolbar.style.display = this._isSandbox ? '' : 'none';
    this._body.style.display = listing ? '' : 'none';
    this._crumbs.replaceChildren();
    this._rows.replaceChildren();
    this._disk.textContent = '';
    if (!listing) {
      return;
    }
    const parts = this._folder ? this._folder.split('/') : [];
    const crumbs: [string, string][] = [[WORKSPACE, '']];
    parts.forEach((part, index) => crumbs.push([part, parts.slice(0, index + 1).join('/')]));
    crumbs.forEach(([label, folder], index) => {
      if (index > 0) {
        this._crumbs.append(element('span', 'jp-AiComputerFiles-separator', '/'));
      }
      const crumb = element('span', 'jp-AiComputerFiles-crumb', label);
      crumb.addEventListener('click', () => this._open(folder));
      this._crumbs.append(crumb);
    });
    const entries = [...listing.entries].sort((a, b) =>
      a.type === b.type || (a.type !== 'directory' && b.type !== 'directory')
        ? a.name.localeCompare(b.name)
        : a.type === 'directory'
          ? -1
          : 1
    );
    if (this._folder) {
      const up = this._row({ name: '..', path: '', type: 'directory', size: 0, modified: 0 }, true);
      this._rows.append(up);
    }
    for (const entry of entries) {
      this._rows.append(this._row(entry, false));
    }
    if (entries.length === 0) {
      const empty = element('tr', 'jp-AiComputerFiles-empty');
      const cell = element('td', '', 'Empty: drop files here or use Upload.');
      cell.colSpan = 3;
      empty.append(cell);
      this._rows.append(empty);
    }
    if (listing.truncated) {
      this._status.textContent = `Only the first ${entries.length} entries are shown.`;
    }
    const { used, limit } = listing.disk;
    this._disk.textContent =
      used === null
        ? `Disk: ${formatBytes(limit)} (/workspace)`
        : `Disk: ${formatBytes(used)} of ${formatBytes(limit)} used (/workspace)`;
    this._updateButtons();
  }

  private _row(entry: IEntry, isParent: boolean): HTMLTableRowElement {
    const row = element('tr', 'jp-AiComputerFiles-item');
    row.dataset.name = entry.name;
    row.dataset.type = entry.type;
    const name = element('td', 'jp-AiComputerFiles-name');
    const icon = element('span', `jp-AiComputerFiles-icon jp-mod-${entry.type}`);
    name.append(icon, document.createTextNode(entry.name));
    name.title = isParent ? 'The folder above' : entry.path;
    const size = element(
      'td',
      'jp-AiComputerFiles-size',
      entry.type === 'file' ? formatBytes(entry.size) : ''
    );
    const modified = element(
      'td',
      'jp-AiComputerFiles-modified',
      isParent ? '' : formatTime(entry.modified)
    );
    row.append(name, size, modified);
    if (this._selected === entry.name && !isParent) {
      row.classList.add('jp-mod-selected');
    }
    row.addEventListener('click', () => {
      if (isParent) {
        return;
      }
      this._selected = entry.name;
      for (const other of Array.from(this._rows.children)) {
        other.classList.toggle('jp-mod-selected', other === row);
      }
      this._updateButtons();
    });
    row.addEventListener('dblclick', () => {
      if (isParent) {
        this._open(PathExt.dirname(this._folder));
      } else if (entry.type === 'directory') {
        this._open(this._join(entry.name));
      } else if (entry.type === 'file') {
        this._download(entry.name);
      }
    });
    if (!isParent && entry.type === 'file') {
      row.addEventListener('mousedown', event => {
        if (event.button === 0) {
          this._pressed = { x: event.clientX, y: event.clientY, entry, row };
          document.addEventListener('mousemove', this, true);
          document.addEventListener('mouseup', this, true);
        }
      });
    }
    return row;
  }

  private _updateButtons(): void {
    const entry = this._selectedEntry();
    for (const button of Array.from(this._toolbar.querySelectorAll('button'))) {
      const action = button.dataset.action;
      const needsFile = action === 'download' || action === 'to-host';
      button.disabled =
        (needsFile && entry?.type !== 'file') ||
        (action === 'to-host' && !this._browser) ||
        (action === 'delete' && !entry);
    }
  }

  private _selectedEntry(): IEntry | null {
    return this._listing?.entries.find(entry => entry.name === this._selected) ?? null;
  }

  private _open(folder: string): void {
    this._folder = folder === '.' ? '' : folder;
    this._selected = null;
    void this.refresh();
  }

  private _join(name: string): string {
    return this._folder ? `${this._folder}/${name}` : name;
  }

  private _absolute(relative: string): string {
    return relative ? `${WORKSPACE}/${relative}` : WORKSPACE;
  }

  private _say(text: string, share: number | null = null): void {
    this._status.textContent = text;
    this._progress.style.display = share === null ? 'none' : '';
    const fill = this._progress.firstElementChild as HTMLElement;
    fill.style.width = `${Math.round((share ?? 0) * 100)}%`;
  }

  private async _failed(what: string, error: unknown): Promise<void> {
    this._say(`${what} failed: ${(error as Error).message}`);
    await showDialog({
      title: `${what} failed`,
      body: (error as Error).message,
      buttons: [Dialog.okButton()]
    });
  }

  // -- actions ---------------------------------------------------------------------------

  private async _uploadAll(files: File[]): Promise<void> {
    const kernelId = this.kernelId;
    if (!kernelId || files.length === 0) {
      return;
    }
    const names = new Set(this._listing?.entries.map(entry => entry.name) ?? []);
    for (const file of files) {
      if (names.has(file.name) && !(await this._confirmReplace(file.name, 'the sandbox'))) {
        continue;
      }
      const target = this._absolute(this._join(file.name));
      try {
        this._say(`Uploading ${file.name}…`, 0);
        await this._api.upload(kernelId, target, file, share =>
          this._say(`Uploading ${file.name}: ${Math.round(share * 100)}%`, share)
        );
        this._say(`Uploaded ${file.name} (${formatBytes(file.size)})`);
      } catch (error) {
        await this._failed(`Uploading ${file.name}`, error);
      }
      await this.refresh();
    }
  }

  private async _confirmReplace(name: string, where: string): Promise<boolean> {
    const answer = await showDialog({
      title: 'Replace file?',
      body: `${name} exists in ${where}. Replace it?`,
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Replace' })]
    });
    return answer.button.accept;
  }

  private _download(name?: string): void {
    const entry = name ?? this._selectedEntry()?.name;
    const kernelId = this.kernelId;
    if (!entry || !kernelId) {
      return;
    }
    const link = document.createElement('a');
    link.href = this._api.downloadUrl(kernelId, this._absolute(this._join(entry)));
    link.download = entry;
    link.style.display = 'none';
    document.body.append(link);
    link.click();
    link.remove();
    this._say(`Downloading ${entry}`);
  }

  private async _newFolder(): Promise<void> {
    const kernelId = this.kernelId;
    if (!kernelId) {
      return;
    }
    const answer = await InputDialog.getText({ title: 'New folder', placeholder: 'name' });
    const name = answer.button.accept ? (answer.value ?? '').trim() : '';
    if (!name) {
      return;
    }
    try {
      await this._api.makeFolder(kernelId, this._absolute(this._join(name)));
      this._say(`Made ${name}`);
    } catch (error) {
      await this._failed(`Making ${name}`, error);
    }
    await this.refresh();
  }

  private async _delete(): Promise<void> {
    const entry = this._selectedEntry();
    const kernelId = this.kernelId;
    if (!entry || !kernelId) {
      return;
    }
    const what = entry.type === 'directory' ? `the folder ${entry.name} and all it holds` : entry.name;
    const answer = await showDialog({
      title: 'Delete',
      body: `Delete ${what} from the sandbox?`,
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Delete' })]
    });
    if (!answer.button.accept) {
      return;
    }
    try {
      await this._api.remove(kernelId, this._absolute(this._join(entry.name)));
      this._selected = null;
      this._say(`Deleted ${entry.name}`);
    } catch (error) {
      await this._failed(`Deleting ${entry.name}`, error);
    }
    await this.refresh();
  }

  private async _copySelectedToHost(): Promise<void> {
    const entry = this._selectedEntry();
    const kernelId = this.kernelId;
    if (entry && kernelId && this._browser) {
      const hostDir = this._browser.model.path;
      await copyToHost(this._api, kernelId, [this._absolute(this._join(entry.name))], hostDir);
      await this._browser.model.refresh();
      this._say(`Copied ${entry.name} to the host folder /${hostDir}`);
    }
  }

  private async _copyFromHost(paths: string[]): Promise<void> {
    const kernelId = this.kernelId;
    if (!kernelId) {
      return;
    }
    const names = new Set(this._listing?.entries.map(entry => entry.name) ?? []);
    for (const path of paths) {
      const name = PathExt.basename(path);
      if (names.has(name) && !(await this._confirmReplace(name, 'the sandbox'))) {
        continue;
      }
      try {
        this._say(`Copying ${name} into the sandbox…`);
        await this._api.copyFromHost(kernelId, path, this._absolute(this._folder));
        this._say(`Copied ${name} into the sandbox`);
      } catch (error) {
        await this._failed(`Copying ${name}`, error);
      }
    }
    await this.refresh();
  }

  // -- drag and drop ---------------------------------------------------------------------

  private _onDragOver(event: Drag.Event): void {
    if (!this.kernelId || !event.mimeData.hasData(CONTENTS_MIME)) {
      return;
    }
    event.preventDefault();
    event.stopPropagation();
    // The file browser offers only 'move'; what happens is a copy all the same.
    event.dropAction = event.proposedAction;
    this.addClass('jp-mod-dropTarget');
  }

  private _onDrop(event: Drag.Event): void {
    this.removeClass('jp-mod-dropTarget');
    if (!this.kernelId || !event.mimeData.hasData(CONTENTS_MIME)) {
      return;
    }
    event.preventDefault();
    event.stopPropagation();
    event.dropAction = event.proposedAction;
    // Paths of the file browser's own drive, as the server's contents root names them.
    const contents = this._browser?.model.manager.services.contents;
    const paths = (event.mimeData.getData(CONTENTS_MIME) as string[]).map(path =>
      contents ? contents.localPath(path) : path
    );
    void this._copyFromHost(paths);
  }

  private _onNativeDragOver(event: DragEvent): void {
    if (this.kernelId && event.dataTransfer?.types.includes('Files')) {
      event.preventDefault();
      event.dataTransfer.dropEffect = 'copy';
      this.addClass('jp-mod-dropTarget');
    }
  }

  private _onNativeDrop(event: DragEvent): void {
    this.removeClass('jp-mod-dropTarget');
    const files = Array.from(event.dataTransfer?.files ?? []);
    if (this.kernelId && files.length) {
      event.preventDefault();
      event.stopPropagation(); // not an upload into the host's file browser behind
      void this._uploadAll(files);
    }
  }

  private _onMouseMove(event: MouseEvent): void {
    const pressed = this._pressed;
    if (!pressed || this._drag) {
      return;
    }
    if (
      Math.abs(event.clientX - pressed.x) < DRAG_THRESHOLD &&
      Math.abs(event.clientY - pressed.y) < DRAG_THRESHOLD
    ) {
      return;
    }
    this._pressed = null;
    document.removeEventListener('mousemove', this, true);
    document.removeEventListener('mouseup', this, true);
    const kernelId = this.kernelId;
    if (!kernelId) {
      return;
    }
    const dragImage = element('div', 'jp-AiComputerFiles-dragImage', pressed.entry.name);
    const mimeData = new MimeData();
    const carried: ISandboxDrag = {
      kernelId,
      paths: [this._absolute(this._join(pressed.entry.name))]
    };
    mimeData.setData(SANDBOX_MIME, carried);
    this._drag = new Drag({
      mimeData,
      dragImage,
      proposedAction: 'copy',
      supportedActions: 'copy',
      source: this
    });
    void this._drag.start(event.clientX, event.clientY).then(() => {
      this._drag = null;
    });
  }

  private _onStatus(_: ISessionContext, status: Kernel.Status): void {
    // After each cell (or a run of them): files it wrote appear.
    if (status === 'idle' || status === 'restarting' || status === 'dead') {
      window.clearTimeout(this._settle);
      this._settle = window.setTimeout(() => void this.refresh(), SETTLE_MS);
    }
  }

  private _onClosed(): void {
    this.follow(null);
  }

  private _onKernelChanged(): void {
    this._folder = '';
    this._selected = null;
    void this.refresh();
  }

  private _api: SandboxAPI;
  private _browser: IDefaultFileBrowser | null;
  private _context: ISessionContext | null = null;
  private _isSandbox = false;
  private _listing: IListing | null = null;
  private _folder = '';
  private _selected: string | null = null;
  private _stale = false;
  private _settle = 0;
  private _pressed: { x: number; y: number; entry: IEntry; row: HTMLElement } | null = null;
  private _drag: Drag | null = null;
  private _kernelLabel: HTMLElement;
  private _toolbar: HTMLElement;
  private _input: HTMLInputElement;
  private _crumbs: HTMLElement;
  private _status: HTMLElement;
  private _progress: HTMLElement;
  private _notice: HTMLElement;
  private _rows: HTMLElement;
  private _body: HTMLElement;
  private _disk: HTMLElement;
}

/** Copy sandbox files into a host folder, asking before a file there is replaced. */
export async function copyToHost(
  api: SandboxAPI,
  kernelId: string,
  paths: string[],
  hostDir: string
): Promise<void> {
  for (const path of paths) {
    const name = PathExt.basename(path);
    try {
      await api.copyToHost(kernelId, path, hostDir, 'fail');
    } catch (error) {
      if (!(error instanceof RequestError) || error.status !== 409) {
        await showDialog({
          title: `Copying ${name} failed`,
          body: (error as Error).message,
          buttons: [Dialog.okButton()]
        });
        continue;
      }
      const answer = await showDialog({
        title: 'File exists',
        body: `${name} exists in the host folder /${hostDir}.`,
        buttons: [
          Dialog.cancelButton(),
          Dialog.okButton({ label: 'Keep both' }),
          Dialog.warnButton({ label: 'Replace' })
        ]
      });
      if (!answer.button.accept) {
        continue;
      }
      const choice = answer.button.label === 'Replace' ? 'replace' : 'rename';
      try {
        await api.copyToHost(kernelId, path, hostDir, choice);
      } catch (again) {
        await showDialog({
          title: `Copying ${name} failed`,
          body: (again as Error).message,
          buttons: [Dialog.okButton()]
        });
      }
    }
  }
}

/**
 * Let sandbox files dragged from the panel be dropped on the host's file browser: they are
 * copied into its current folder. Listens in the capture phase, before the browser's own
 * listing (which handles only its own items).
 */
export function acceptDropsOnBrowser(browser: IDefaultFileBrowser, api: SandboxAPI): void {
  const node = browser.node;
  const carried = (event: Drag.Event): ISandboxDrag | null =>
    event.mimeData.hasData(SANDBOX_MIME)
      ? (event.mimeData.getData(SANDBOX_MIME) as ISandboxDrag)
      : null;
  const accept = (event: Event): void => {
    const drag = event as Drag.Event;
    if (!carried(drag)) {
      return;
    }
    drag.preventDefault();
    drag.stopPropagation();
    drag.dropAction = 'copy';
    node.classList.toggle('jp-AiComputerFiles-hostDropTarget', event.type !== 'lm-dragleave');
  };
  node.addEventListener('lm-dragenter', accept, true);
  node.addEventListener('lm-dragover', accept, true);
  node.addEventListener('lm-dragleave', accept, true);
  node.addEventListener(
    'lm-drop',
    event => {
      const drag = event as Drag.Event;
      const what = carried(drag);
      if (!what) {
        return;
      }
      drag.preventDefault();
      drag.stopPropagation();
      drag.dropAction = 'copy';
      node.classList.remove('jp-AiComputerFiles-hostDropTarget');
      const hostDir = browser.model.path;
      void copyToHost(api, what.kernelId, what.paths, hostDir).then(() =>
        browser.model.refresh()
      );
    },
    true
  );
}
