// Typed client for the hub's HTTP API. Wire types come from Rust (ts-rs).
import type { Approval } from "./generated/Approval";
import type { ApprovalList } from "./generated/ApprovalList";
import type { ApprovalResponse } from "./generated/ApprovalResponse";
import type { AuditList } from "./generated/AuditList";
import type { Budget } from "./generated/Budget";
import type { DecideApproval } from "./generated/DecideApproval";
import type { Decision } from "./generated/Decision";
import type { DecisionChannel } from "./generated/DecisionChannel";
import type { Device } from "./generated/Device";
import type { DeviceList } from "./generated/DeviceList";
import type { ErrorCode } from "./generated/ErrorCode";
import type { ErrorResponse } from "./generated/ErrorResponse";
import type { EventTicket } from "./generated/EventTicket";
import type { HubInfo } from "./generated/HubInfo";
import type { Machine } from "./generated/Machine";
import type { MachineList } from "./generated/MachineList";
import type { MessagePage } from "./generated/MessagePage";
import type { PairDevice } from "./generated/PairDevice";
import type { PolicyDocument } from "./generated/PolicyDocument";
import type { PairedDevice } from "./generated/PairedDevice";
import type { Pairing } from "./generated/Pairing";
import type { RemoteAccess } from "./generated/RemoteAccess";
import type { SendMessage } from "./generated/SendMessage";
import type { Session } from "./generated/Session";
import type { SessionList } from "./generated/SessionList";
import type { SessionResponse } from "./generated/SessionResponse";
import type { SessionUsage } from "./generated/SessionUsage";
import type { SetPolicy } from "./generated/SetPolicy";
import type { SetRemoteAccess } from "./generated/SetRemoteAccess";
import type { SetSkipApprovals } from "./generated/SetSkipApprovals";
import type { SpawnedSession } from "./generated/SpawnedSession";
import type { SpawnNeedsApproval } from "./generated/SpawnNeedsApproval";
import type { SpawnSession } from "./generated/SpawnSession";
import { decisionChannel } from "./desktop";

/** An error answer of the hub, or a network failure (`code` = "network"). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: ErrorCode | "network",
    message: string,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

export const PAGE_SIZE = 200;

function isErrorResponse(value: unknown): value is ErrorResponse {
  if (typeof value !== "object" || value === null) return false;
  const err = (value as { error?: unknown }).error;
  return typeof err === "object" && err !== null && typeof (err as { code?: unknown }).code === "string";
}

function isHubInfo(value: unknown): value is HubInfo {
  if (typeof value !== "object" || value === null) return false;
  const v = value as { credentials?: unknown };
  if (typeof v.credentials !== "object" || v.credentials === null) return false;
  const c = v.credentials as { store?: unknown; notice?: unknown };
  return typeof c.store === "string" && (c.notice === undefined || c.notice === null || typeof c.notice === "string");
}

export type FetchFn = (input: string, init?: RequestInit) => Promise<Response>;

/** Providers whose consent notice `GET /api/remote/consent?kind=` gives (the plaintext ones). */
export type ConsentKind = "lan" | "bore";

/**
 * One JSON request. Throws `ApiError` for error answers (with the hub's code)
 * and for network failures (`code` = "network"); calls `onUnauthorized` on a
 * 401 before throwing.
 */
async function requestJson<T>(
  fetchFn: FetchFn,
  method: string,
  path: string,
  token: string | null,
  body: unknown,
  onUnauthorized: () => void,
): Promise<T> {
  const headers: Record<string, string> = {};
  if (token !== null) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let res: Response;
  try {
    res = await fetchFn(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  } catch (e) {
    throw new ApiError(0, "network", e instanceof Error ? e.message : "network error");
  }
  const text = await res.text();
  let parsed: unknown = undefined;
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
  }
  if (!res.ok) {
    if (res.status === 401) onUnauthorized();
    if (isErrorResponse(parsed)) throw new ApiError(res.status, parsed.error.code, parsed.error.message);
    throw new ApiError(res.status, res.status === 401 ? "unauthorized" : "internal", `HTTP ${res.status}`);
  }
  return parsed as T;
}

function isPairedDevice(value: unknown): value is PairedDevice {
  if (typeof value !== "object" || value === null) return false;
  const v = value as { token?: unknown; device?: unknown };
  return (
    typeof v.token === "string" &&
    v.token.length > 0 &&
    typeof v.device === "object" &&
    v.device !== null &&
    typeof (v.device as { id?: unknown }).id === "string"
  );
}

/**
 * `POST /pair` (no auth; the remote listener this page came from): trades a
 * pairing secret or typed code for a device token. A 401 here means a wrong
 * or expired code (`pairing_invalid`), not a sign-out.
 */
export async function pairDevice(body: PairDevice, fetchFn: FetchFn = (i, init) => fetch(i, init)): Promise<PairedDevice> {
  const answer = await requestJson<unknown>(fetchFn, "POST", "/pair", null, body, () => {});
  if (!isPairedDevice(answer)) throw new ApiError(200, "internal", "The hub's answer to the pairing was not understood.");
  return answer;
}

export class HubApi {
  constructor(
    private readonly token: string,
    /** Called on every 401, before the error is thrown. */
    private readonly onUnauthorized: () => void,
    /** Recorded with our decisions: `desktop_window` inside the desktop app, else `web`. */
    readonly channel: DecisionChannel = decisionChannel(),
  ) {}

  private request<T>(method: string, path: string, body?: unknown): Promise<T> {
    return requestJson<T>((i, init) => fetch(i, init), method, path, this.token, body, this.onUnauthorized);
  }

  async sessions(): Promise<Session[]> {
    return (await this.request<SessionList>("GET", "/api/sessions")).sessions;
  }

  async session(id: string): Promise<Session> {
    return (await this.request<SessionResponse>("GET", `/api/sessions/${encodeURIComponent(id)}`)).session;
  }

  /** The `limit` messages just before `before` (ascending). */
  messagesBefore(id: string, before: number, limit = PAGE_SIZE): Promise<MessagePage> {
    return this.request("GET", `/api/sessions/${encodeURIComponent(id)}/messages?before=${before}&limit=${limit}`);
  }

  /** Messages with seq > `after` (ascending). */
  messagesAfter(id: string, after: number, limit = PAGE_SIZE): Promise<MessagePage> {
    return this.request("GET", `/api/sessions/${encodeURIComponent(id)}/messages?after=${after}&limit=${limit}`);
  }

  async sendMessage(id: string, text: string): Promise<void> {
    const body: SendMessage = { text };
    await this.request("POST", `/api/sessions/${encodeURIComponent(id)}/messages`, body);
  }

  async abort(id: string): Promise<void> {
    await this.request("POST", `/api/sessions/${encodeURIComponent(id)}/abort`);
  }

  /** Ends the session: the wrapper stops the agent. */
  async stop(id: string): Promise<void> {
    await this.request("POST", `/api/sessions/${encodeURIComponent(id)}/stop`);
  }

  /** Tokens per model, totals, the budget and whether it paused the session. */
  usage(id: string): Promise<SessionUsage> {
    return this.request("GET", `/api/sessions/${encodeURIComponent(id)}/usage`);
  }

  /** Sets the session's budget, or clears it with `null`; a raised or cleared budget unpauses. */
  setBudget(id: string, budget: Budget | null): Promise<SessionUsage> {
    return this.request("PUT", `/api/sessions/${encodeURIComponent(id)}/budget`, budget);
  }

  async pendingApprovals(sessionId?: string): Promise<Approval[]> {
    const q = sessionId ? `&session_id=${encodeURIComponent(sessionId)}` : "";
    return (await this.request<ApprovalList>("GET", `/api/approvals?state=pending${q}`)).approvals;
  }

  async decide(id: string, decision: Decision, message: string | null = null): Promise<ApprovalResponse> {
    const body: DecideApproval = { decision, message, channel: this.channel };
    return this.request<ApprovalResponse>("POST", `/api/approvals/${encodeURIComponent(id)}`, body);
  }

  async machines(): Promise<Machine[]> {
    return (await this.request<MachineList>("GET", "/api/machines")).machines;
  }

  /**
   * Starts a session on a machine through its runner. Resolves with the new
   * session, or with the approval the hub asks for first (its directory does
   * not exist yet; allowing the approval creates it and starts the session).
   */
  async spawnSession(machineId: string, body: SpawnSession): Promise<SpawnedSession | SpawnNeedsApproval> {
    const path = `/api/machines/${encodeURIComponent(machineId)}/sessions`;
    return this.request<SpawnedSession | SpawnNeedsApproval>("POST", path, body);
  }

  /**
   * `GET /api/hub` (owner only). Null when the hub predates the endpoint
   * (404) or answers something that is not a `HubInfo`.
   */
  async hubInfo(): Promise<HubInfo | null> {
    let info: unknown;
    try {
      info = await this.request<unknown>("GET", "/api/hub");
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) return null;
      throw e;
    }
    return isHubInfo(info) ? info : null;
  }

  eventTicket(): Promise<EventTicket> {
    return this.request("POST", "/api/events/ticket");
  }

  // Phone access (owner token only; a paired device never calls these).

  /** `GET /api/remote` */
  remoteAccess(): Promise<RemoteAccess> {
    return this.request("GET", "/api/remote");
  }

  /** `PUT /api/remote`: on with a provider (409 `consent_required` without the plaintext consent), or off. */
  setRemoteAccess(body: SetRemoteAccess): Promise<RemoteAccess> {
    return this.request("PUT", "/api/remote", body);
  }

  /**
   * `GET /api/remote/consent?kind=…&bind=|host=…`: the exact notice a person must
   * accept for a plaintext provider. The notice names the address (LAN bind, bore
   * host), so it is asked for the address the person typed; empty: the hub's default.
   * `null`: the hub needs no consent there (LAN served over its own HTTPS).
   */
  async consentNotice(kind: ConsentKind, target = ""): Promise<string | null> {
    let query = `kind=${encodeURIComponent(kind)}`;
    if (target) query += `&${kind === "bore" ? "host" : "bind"}=${encodeURIComponent(target)}`;
    const answer = await this.request<unknown>("GET", `/api/remote/consent?${query}`);
    const notice = (answer as { notice?: unknown } | null)?.notice;
    // `null`: no consent needed on this path (LAN or bore when the hub serves HTTPS with its own certificate).
    if (notice === null) return null;
    if (typeof notice !== "string" || !notice.trim()) {
      throw new ApiError(200, "internal", "The hub gave no consent notice for this connection.");
    }
    return notice;
  }

  /** `POST /api/pairing`: a new pairing offer (409 `remote_off` while phone access is off). */
  createPairing(): Promise<Pairing> {
    return this.request("POST", "/api/pairing");
  }

  /** `DELETE /api/pairing/{id}`: withdraws an offer. */
  async withdrawPairing(id: string): Promise<void> {
    await this.request("DELETE", `/api/pairing/${encodeURIComponent(id)}`);
  }

  /** `GET /api/devices` (newest first). */
  async devices(): Promise<Device[]> {
    return (await this.request<DeviceList>("GET", "/api/devices")).devices;
  }

  /** `DELETE /api/devices/{id}` */
  async revokeDevice(id: string): Promise<void> {
    await this.request("DELETE", `/api/devices/${encodeURIComponent(id)}`);
  }

  /** `POST /api/devices/revoke-all`: revokes every device and turns phone access off. */
  async revokeAllDevices(): Promise<void> {
    await this.request("POST", "/api/devices/revoke-all");
  }

  // Audit log and approval policy (owner token only).

  /** `GET /api/audit?…` (the query from `auditQuery`): newest first. */
  audit(query: string): Promise<AuditList> {
    return this.request("GET", `/api/audit${query}`);
  }

  /** `GET /api/policy` */
  policy(): Promise<PolicyDocument> {
    return this.request("GET", "/api/policy");
  }

  /** `PUT /api/policy`: 400 `invalid_policy` (with the line) keeps the old policy. */
  setPolicy(text: string): Promise<PolicyDocument> {
    const body: SetPolicy = { text };
    return this.request("PUT", "/api/policy", body);
  }

  /** `POST /api/sessions/{id}/skip-approvals` */
  async setSkipApprovals(id: string, enabled: boolean): Promise<Session> {
    const body: SetSkipApprovals = { enabled };
    return (await this.request<SessionResponse>("POST", `/api/sessions/${encodeURIComponent(id)}/skip-approvals`, body)).session;
  }
}
