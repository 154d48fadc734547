// The approval policy editor (owner only): `$HAPI_HOME/policy.toml` as text,
// saved through `PUT /api/policy`. The hub validates; a refused text keeps the
// policy in effect and comes back as `invalid_policy` with its line.
import { ApiError } from "./api";
import { errorTextOf } from "./audit";
import type { PolicyDocument } from "./generated/PolicyDocument";
import { Observable } from "./observable";

export interface PolicyApi {
  policy(): Promise<PolicyDocument>;
  setPolicy(text: string): Promise<PolicyDocument>;
}

/** Where an invalid policy is wrong, from the hub's `line L, column C: reason`. */
export interface PolicyProblem {
  line: number | null;
  column: number | null;
  reason: string;
}

export function policyProblem(message: string): PolicyProblem {
  const m = /^line (\d+), column (\d+): ([\s\S]*)$/.exec(message.trim());
  if (!m) return { line: null, column: null, reason: message };
  return { line: Number(m[1]), column: Number(m[2]), reason: m[3] };
}

export function problemText(p: PolicyProblem): string {
  return p.line === null ? p.reason : `Line ${p.line}, column ${p.column}: ${p.reason}`;
}

/** Character offset of the start of a 1-based line (for putting the cursor there). */
export function offsetOfLine(text: string, line: number): number {
  let offset = 0;
  for (let i = 1; i < line; i++) {
    const next = text.indexOf("\n", offset);
    if (next < 0) return text.length;
    offset = next + 1;
  }
  return offset;
}

/** A starting point for an empty policy (every request is asked until a rule says otherwise). */
export const POLICY_EXAMPLE = `# HAPI approval policy. Without a matching rule a request is asked.
# A matching deny rule wins, then ask, then allow (whatever their order).
# allow never matches a compound command (; && || | > $(…) …): it is asked.

[[rule]]
name = "read-only git"
tool = "Bash"
command = ["git status", "git diff *", "git log *"]
action = "allow"

[[rule]]
name = "edit my projects"
tool = ["Edit", "Write", "MultiEdit"]
path = ["~/projects/**"]
action = "allow"

[[rule]]
name = "never rm -rf"
command = ["rm -rf *", "rm -fr *"]
action = "deny"
`;

export class PolicyStore extends Observable {
  doc: PolicyDocument | null = null;
  /** The text being edited. */
  draft = "";
  loading = false;
  saving = false;
  loadError: string | null = null;
  problem: PolicyProblem | null = null;
  /** Set after a successful save, until the next edit. */
  saved = false;

  constructor(private readonly api: PolicyApi) {
    super();
  }

  /** Unsaved changes. */
  get dirty(): boolean {
    return this.doc !== null && this.draft !== this.doc.text;
  }

  async load(): Promise<void> {
    this.loading = true;
    this.loadError = null;
    this.emit();
    try {
      this.doc = await this.api.policy();
      this.draft = this.doc.text;
      this.problem = null;
    } catch (e) {
      this.loadError = errorTextOf(e);
    } finally {
      this.loading = false;
      this.emit();
    }
  }

  edit(text: string): void {
    this.draft = text;
    this.saved = false;
    this.emit();
  }

  /** Saves the draft; true when the hub took it. */
  async save(): Promise<boolean> {
    if (this.saving) return false;
    this.saving = true;
    this.problem = null;
    this.saved = false;
    this.emit();
    try {
      this.doc = await this.api.setPolicy(this.draft);
      this.draft = this.doc.text;
      this.saved = true;
      return true;
    } catch (e) {
      this.problem =
        e instanceof ApiError && e.code === "invalid_policy" ? policyProblem(e.message) : { line: null, column: null, reason: errorTextOf(e) };
      return false;
    } finally {
      this.saving = false;
      this.emit();
    }
  }
}
