/** The server's HTTP API as this device (docs/protocol.md section 4; port of taube.client.api). */

import { parseStatusKey } from "./notices.js";
import { b64decode, b64encode } from "./util.js";

export class ApiError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status: number,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

/** Codes after which this device's token is of no use any more. */
export const SESSION_CODES = new Set(["auth.invalid_token", "auth.token_expired", "auth.revoked", "auth.required"]);

export interface DeviceSession {
  handle: string;
  device: number;
  token: string;
}
export interface GroupMember {
  handle: string;
  admin: boolean;
}
export interface GroupInfo {
  id: string;
  address: string;
  name: string;
  created_ms: number;
  members: GroupMember[];
}
export interface DeviceBundle {
  device: number;
  identityKey: Uint8Array;
  signedPrekey: { id: number; key: Uint8Array; signature: Uint8Array };
  oneTimePrekey: { id: number; key: Uint8Array } | null;
}
export interface DeviceIdentity {
  device: number;
  identityKey: Uint8Array;
}
export interface KeysStatus {
  one_time_prekeys: number;
  signed_prekey_id: number | null;
  identity_key: string | null;
}
export interface KeysUpload {
  identityKey: Uint8Array;
  signedPrekey: { id: number; key: Uint8Array; signature: Uint8Array } | null;
  oneTimePrekeys: { id: number; key: Uint8Array }[];
}
export interface BlobStatus {
  id: string;
  size: number;
  offset: number;
  complete: boolean;
}
export interface LinkStart {
  id: string;
  code: string;
  secret: string;
  expires_ms: number;
}
export interface LinkState {
  status: "pending" | "approved" | "expired";
  handle?: string;
  device?: number;
  token?: string;
}
export interface DeviceInfo {
  id: number;
  name: string;
  created_ms: number;
  last_active_ms: number;
  current: boolean;
}

export interface StatusIncident {
  id: number;
  title: string;
  started_ms: number;
  updates: { at_ms?: number; text?: string; status?: string }[];
}
export interface StatusDocument {
  verdict: string;
  generated_ms: number;
  open: StatusIncident[];
}

/** The fields of `/status.json` this client shows; throws on anything malformed. */
export function parseStatus(raw: unknown): StatusDocument {
  const o = raw as Record<string, unknown> | null;
  if (typeof o !== "object" || o === null || typeof o.verdict !== "string") throw new Error("not a status document");
  const incidents = (o.incidents ?? {}) as Record<string, unknown>;
  const open = Array.isArray(incidents.open) ? incidents.open : [];
  return {
    verdict: o.verdict,
    generated_ms: typeof o.generated_ms === "number" ? o.generated_ms : 0,
    open: open
      .filter((i): i is Record<string, unknown> => typeof i === "object" && i !== null && typeof (i as Record<string, unknown>).id === "number")
      .map((i) => ({
        id: i.id as number,
        title: typeof i.title === "string" ? i.title : "",
        started_ms: typeof i.started_ms === "number" ? i.started_ms : 0,
        updates: Array.isArray(i.updates) ? (i.updates as StatusIncident["updates"]) : [],
      })),
  };
}

async function problem(res: Response): Promise<ApiError> {
  let body: Record<string, unknown> = {};
  try {
    body = (await res.json()) as Record<string, unknown>;
  } catch {
    /* not JSON */
  }
  const code = typeof body.code === "string" ? body.code : `http.${res.status}`;
  const detail = typeof body.detail === "string" ? body.detail : res.statusText || "request failed";
  const details = typeof body.details === "object" && body.details !== null ? (body.details as Record<string, unknown>) : {};
  return new ApiError(code, detail, res.status, details);
}

export class Api {
  constructor(
    private token: string | null = null,
    readonly base = "",
  ) {}

  setToken(token: string | null): void {
    this.token = token;
  }

  async request<T>(method: string, path: string, body?: unknown, init: RequestInit = {}): Promise<T> {
    const headers: Record<string, string> = { ...((init.headers as Record<string, string>) ?? {}) };
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    let payload: BodyInit | undefined;
    if (body instanceof Uint8Array) {
      payload = body as unknown as BodyInit;
    } else if (body !== undefined) {
      payload = JSON.stringify(body);
      headers["Content-Type"] = "application/json";
    }
    let res: Response;
    try {
      res = await fetch(this.base + path, { ...init, method, headers, body: payload ?? null, cache: "no-store" });
    } catch (e) {
      throw new ApiError("network", `cannot reach the server: ${e instanceof Error ? e.message : e}`, 0);
    }
    if (!res.ok) throw await problem(res);
    if (res.status === 204) return undefined as T;
    const type = res.headers.get("Content-Type") ?? "";
    if (type.includes("json")) return (await res.json()) as T;
    return new Uint8Array(await res.arrayBuffer()) as unknown as T;
  }

  register(handle: string, password: string, deviceName: string): Promise<DeviceSession> {
    return this.request("POST", "/v1/accounts", { handle, password, device_name: deviceName });
  }
  login(handle: string, password: string, deviceName: string): Promise<DeviceSession> {
    return this.request("POST", "/v1/sessions", { handle, password, device_name: deviceName });
  }
  startLink(deviceName: string): Promise<LinkStart> {
    return this.request("POST", "/v1/links", { device_name: deviceName });
  }
  pollLink(id: string, secret: string): Promise<LinkState> {
    return this.request("GET", `/v1/links/${encodeURIComponent(id)}?secret=${encodeURIComponent(secret)}`);
  }
  approveLink(code: string): Promise<{ handle: string; device: number }> {
    return this.request("POST", `/v1/links/${encodeURIComponent(code.trim().toUpperCase())}/approve`, {});
  }
  me(): Promise<{ handle: string; device: number; hide_presence: boolean; created_ms: number }> {
    return this.request("GET", "/v1/me");
  }
  async devices(): Promise<DeviceInfo[]> {
    return (await this.request<{ devices: DeviceInfo[] }>("GET", "/v1/devices")).devices;
  }
  revokeDevice(id: number): Promise<void> {
    return this.request("DELETE", `/v1/devices/${id}`);
  }
  async blocks(): Promise<string[]> {
    return (await this.request<{ handles: string[] }>("GET", "/v1/blocks")).handles;
  }
  block(handle: string): Promise<void> {
    return this.request("PUT", `/v1/blocks/${encodeURIComponent(handle)}`);
  }
  unblock(handle: string): Promise<void> {
    return this.request("DELETE", `/v1/blocks/${encodeURIComponent(handle)}`);
  }
  /** The status key (`GET /v1/status/key`): what service notices are checked against. */
  async statusKey(): Promise<Uint8Array> {
    return parseStatusKey(await this.request<unknown>("GET", "/v1/status/key"));
  }
  /** The public status document (docs/status.md), without this device's token. */
  async statusDocument(): Promise<StatusDocument> {
    let res: Response;
    try {
      res = await fetch(`${this.base}/status.json`, { cache: "no-store", credentials: "omit" });
    } catch (e) {
      throw new ApiError("network", `cannot reach the status page: ${e instanceof Error ? e.message : e}`, 0);
    }
    if (!res.ok) throw await problem(res);
    return parseStatus(await res.json());
  }
  user(handle: string): Promise<{ handle: string; devices: number[] }> {
    return this.request("GET", `/v1/users/${encodeURIComponent(handle)}`);
  }
  createGroup(name: string, members: string[]): Promise<GroupInfo> {
    return this.request("POST", "/v1/groups", { name, members });
  }
  async groups(): Promise<GroupInfo[]> {
    return (await this.request<{ groups: GroupInfo[] }>("GET", "/v1/groups")).groups;
  }
  group(id: string): Promise<GroupInfo> {
    return this.request("GET", `/v1/groups/${encodeURIComponent(id.replace(/^#/, ""))}`);
  }
  renameGroup(id: string, name: string): Promise<GroupInfo> {
    return this.request("PATCH", `/v1/groups/${encodeURIComponent(id.replace(/^#/, ""))}`, { name });
  }
  addMembers(id: string, handles: string[]): Promise<GroupInfo> {
    return this.request("POST", `/v1/groups/${encodeURIComponent(id.replace(/^#/, ""))}/members`, { handles });
  }
  removeMember(id: string, handle: string): Promise<GroupInfo> {
    return this.request(
      "DELETE",
      `/v1/groups/${encodeURIComponent(id.replace(/^#/, ""))}/members/${encodeURIComponent(handle)}`,
    );
  }
  promote(id: string, handles: string[]): Promise<GroupInfo> {
    return this.request("POST", `/v1/groups/${encodeURIComponent(id.replace(/^#/, ""))}/admins`, { handles });
  }

  async uploadKeys(k: KeysUpload): Promise<KeysStatus> {
    return this.request("PUT", "/v1/keys", {
      identity_key: b64encode(k.identityKey),
      signed_prekey: k.signedPrekey && {
        id: k.signedPrekey.id,
        key: b64encode(k.signedPrekey.key),
        signature: b64encode(k.signedPrekey.signature),
      },
      one_time_prekeys: k.oneTimePrekeys.map((p) => ({ id: p.id, key: b64encode(p.key) })),
    });
  }
  keysStatus(): Promise<KeysStatus> {
    return this.request("GET", "/v1/keys");
  }
  async keyBundles(handle: string, device?: number): Promise<DeviceBundle[]> {
    interface Wire {
      devices: {
        device: number;
        identity_key: string;
        signed_prekey: { id: number; key: string; signature: string };
        one_time_prekey: { id: number; key: string } | null;
      }[];
    }
    const q = device === undefined ? "" : `?device=${device}`;
    const body = await this.request<Wire>("GET", `/v1/keys/${encodeURIComponent(handle)}${q}`);
    return body.devices.map((d) => ({
      device: d.device,
      identityKey: b64decode(d.identity_key),
      signedPrekey: {
        id: d.signed_prekey.id,
        key: b64decode(d.signed_prekey.key),
        signature: b64decode(d.signed_prekey.signature),
      },
      oneTimePrekey: d.one_time_prekey && { id: d.one_time_prekey.id, key: b64decode(d.one_time_prekey.key) },
    }));
  }
  async identities(handle: string): Promise<DeviceIdentity[]> {
    const body = await this.request<{ devices: { device: number; identity_key: string }[] }>(
      "GET",
      `/v1/keys/${encodeURIComponent(handle)}/identities`,
    );
    return body.devices.map((d) => ({ device: d.device, identityKey: b64decode(d.identity_key) }));
  }

  createBlob(size: number, sha256: string): Promise<BlobStatus> {
    return this.request("POST", "/v1/blobs", { size, sha256 });
  }
  uploadChunk(id: string, offset: number, chunk: Uint8Array): Promise<BlobStatus> {
    return this.request("PATCH", `/v1/blobs/${id}`, chunk, {
      headers: { "Upload-Offset": String(offset), "Content-Type": "application/offset+octet-stream" },
    });
  }
  grantBlob(id: string, to: string): Promise<void> {
    return this.request("POST", `/v1/blobs/${id}/grants`, { to });
  }
  downloadBlob(id: string): Promise<Uint8Array> {
    return this.request("GET", `/v1/blobs/${id}`);
  }
}
