/**
 * The ai-computer server extension's REST API, as the meter and the files panel use it
 * (ai_computer/jupyter/server_extension.py and sandbox_files.py), and the formatting both share.
 *
 * Requests go through `ServerConnection.makeRequest`, which adds the token and the XSRF
 * header like every JupyterLab request; uploads use XMLHttpRequest (for their progress) with
 * the same two headers.
 */

import { ISessionContext } from '@jupyterlab/apputils';
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import { Widget } from '@lumino/widgets';

/** A sandbox kernel's report, as the server extension sends it. */
export interface ISandboxReport {
  kernel_id: string;
  running: boolean;
  memory: { used: number | null; limit: number };
  cpu: { used: number | null; limit: number };
  disk?: { used: number | null; limit: number };
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

/** One entry of a sandbox folder. */
export interface IEntry {
  name: string;
  path: string;
  type: 'file' | 'directory' | 'symlink' | 'other';
  size: number;
  modified: number;
}

/** A sandbox folder's listing. */
export interface IListing {
  path: string;
  entries: IEntry[];
  truncated: boolean;
  disk: { used: number | null; limit: number };
}

/** A refused or failed request: its status and the server's message. */
export class RequestError extends Error {
  constructor(
    readonly status: number,
    message: string
  ) {
    super(message);
  }
}

export function formatBytes(bytes: number): string {
  const mib = bytes / (1024 * 1024);
  if (mib >= 1024) {
    return `${(mib / 1024).toFixed(1)} GB`;
  }
  if (bytes < 1024 * 1024) {
    return bytes < 1024 ? `${bytes} B` : `${Math.round(bytes / 1024)} KB`;
  }
  return `${Math.round(mib)} MB`;
}

/** The meter's megabytes: "0 MB" rather than "512 KB" next to a limit in MB. */
export function formatMegabytes(bytes: number): string {
  const mib = bytes / (1024 * 1024);
  return mib >= 1024 ? `${(mib / 1024).toFixed(1)} GB` : `${Math.round(mib)} MB`;
}

/** The session context of a notebook or console widget (null for other widgets). */
export function sessionContextOf(widget: Widget | null): ISessionContext | null {
  const candidate = (widget as { sessionContext?: ISessionContext } | null)?.sessionContext;
  return candidate && 'statusChanged' in candidate ? candidate : null;
}

function cookie(name: string): string | undefined {
  const found = document.cookie.match('\\b' + name + '=([^;]*)\\b');
  return found ? found[1] : undefined;
}

/** Talks to one server's ai-computer endpoints. */
export class SandboxAPI {
  constructor(readonly settings: ServerConnection.ISettings) {}

  /** `ai-computer/sandboxes/<kernel_id>[/<route>]`, with `path` as a query argument. */
  url(kernelId: string, route = '', path?: string): string {
    const base = URLExt.join(
      this.settings.baseUrl,
      'ai-computer',
      'sandboxes',
      encodeURIComponent(kernelId),
      route
    );
    return path === undefined ? base : `${base}?path=${encodeURIComponent(path)}`;
  }

  async report(kernelId: string): Promise<Response> {
    return ServerConnection.makeRequest(this.url(kernelId), {}, this.settings);
  }

  async list(kernelId: string, path: string): Promise<IListing> {
    return (await this._json(this.url(kernelId, 'files', path), {})) as IListing;
  }

  async remove(kernelId: string, path: string): Promise<void> {
    await this._json(this.url(kernelId, 'files', path), { method: 'DELETE' });
  }

  async makeFolder(kernelId: string, path: string): Promise<void> {
    await this._json(this.url(kernelId, 'files/folder', path), { method: 'POST' });
  }

  async copyFromHost(kernelId: string, hostPath: string, directory: string): Promise<void> {
    const body = JSON.stringify({ host_path: hostPath, directory });
    await this._json(this.url(kernelId, 'files/from-host'), { method: 'POST', body });
  }

  /** Copy a sandbox file into a host folder; its path there (relative to the server's root). */
  async copyToHost(
    kernelId: string,
    path: string,
    hostDir: string,
    onConflict: 'fail' | 'replace' | 'rename'
  ): Promise<string> {
    const body = JSON.stringify({ path, host_dir: hostDir, on_conflict: onConflict });
    const answer = await this._json(this.url(kernelId, 'files/to-host'), {
      method: 'POST',
      body
    });
    return (answer as { host_path: string }).host_path;
  }

  /** The URL a browser downloads the file from (its login cookie authenticates it). */
  downloadUrl(kernelId: string, path: string): string {
    return this.url(kernelId, 'files/content', path);
  }

  /** Upload a file to `path`, telling `progress` the share sent (0 to 1). */
  upload(
    kernelId: string,
    path: string,
    file: Blob,
    progress: (share: number) => void
  ): Promise<void> {
    return new Promise((resolve, reject) => {
      const request = new XMLHttpRequest();
      request.open('PUT', this.url(kernelId, 'files/content', path));
      if (this.settings.token) {
        request.setRequestHeader('Authorization', `token ${this.settings.token}`);
      }
      const xsrf = cookie('_xsrf');
      if (xsrf) {
        request.setRequestHeader('X-XSRFToken', xsrf);
      }
      request.upload.onprogress = event => {
        if (event.lengthComputable && event.total > 0) {
          progress(event.loaded / event.total);
        }
      };
      request.onload = () => {
        if (request.status >= 200 && request.status < 300) {
          resolve();
        } else {
          reject(new RequestError(request.status, messageOf(request.responseText)));
        }
      };
      request.onerror = () => reject(new RequestError(0, 'the upload was cut off'));
      request.send(file);
    });
  }

  private async _json(url: string, init: RequestInit): Promise<unknown> {
    let response: Response;
    try {
      response = await ServerConnection.makeRequest(url, init, this.settings);
    } catch (error) {
      throw new RequestError(0, 'the server does not answer');
    }
    const text = await response.text();
    if (!response.ok) {
      throw new RequestError(response.status, messageOf(text));
    }
    return text ? JSON.parse(text) : null;
  }
}

function messageOf(text: string): string {
  try {
    const body = JSON.parse(text) as { message?: string };
    if (body.message) {
      return body.message;
    }
  } catch {
    // not JSON: the text itself
  }
  return text || 'the request failed';
}
