//! The crate's one error type, with a stable [`code`](TunnelError::code) for
//! the wire and a [`permanent`](TunnelError::is_permanent) flag for the
//! supervisor: retrying a permanent error cannot help until the user acts.

use std::sync::Arc;
use std::time::Duration;

use crate::ProviderKind;

/// What went wrong setting up, running or probing a tunnel.
#[derive(Clone, Debug, thiserror::Error)]
pub enum TunnelError {
    /// A CLI the provider drives is not installed (or not on the search path).
    #[error("`{program}` was not found on this computer. {install}")]
    MissingBinary {
        /// The program looked for.
        program: &'static str,
        /// How to install it on Debian/Ubuntu and macOS.
        install: &'static str,
    },

    /// The far side refused us in a way a retry will not fix (a wrong bore
    /// secret, a port outside the server's range).
    #[error("{provider} refused the tunnel: {reason}")]
    Rejected {
        /// The provider.
        provider: ProviderKind,
        /// The far side's message.
        reason: String,
    },

    /// The provider's settings cannot work as given.
    #[error("{provider} settings: {reason}")]
    Config {
        /// The provider.
        provider: ProviderKind,
        /// What is wrong.
        reason: String,
    },

    /// A plaintext provider was started without consent to its notice.
    #[error("this path is not encrypted and needs the user's consent: {notice}")]
    ConsentRequired {
        /// The notice the user must accept.
        notice: String,
    },

    /// The provider is installed but not in a state to tunnel (e.g. Tailscale
    /// logged out). Retried: the user may fix it meanwhile.
    #[error("{provider} is not ready: {reason}")]
    NotReady {
        /// The provider.
        provider: ProviderKind,
        /// What the user should do.
        reason: String,
    },

    /// The server could not be reached (refused, timed out, DNS).
    #[error("could not connect to the {provider} server: {reason}")]
    Connect {
        /// The provider.
        provider: ProviderKind,
        /// The underlying error.
        reason: String,
    },

    /// A CLI command failed, or a sidecar exited before the tunnel was up.
    #[error("`{command}` failed: {detail}")]
    Command {
        /// The command line, for the user to retry by hand.
        command: String,
        /// Its exit status and output.
        detail: String,
    },

    /// Something did not happen in time.
    #[error("{what} timed out after {}s{}", after.as_secs_f32(), detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Timeout {
        /// What we were waiting for ("waiting for …").
        what: String,
        /// How long we waited.
        after: Duration,
        /// What was seen meanwhile, if anything.
        detail: Option<String>,
    },

    /// The health probe did not get `{"status":"ok"}` from `GET {url}/health`.
    #[error("health probe of {url} failed: {reason}")]
    Probe {
        /// The URL probed.
        url: String,
        /// Why it failed.
        reason: String,
    },

    /// An I/O error (spawning a process, reading its output).
    #[error("{context}: {source}")]
    Io {
        /// What we were doing.
        context: String,
        /// The error.
        #[source]
        source: Arc<std::io::Error>,
    },
}

impl TunnelError {
    /// A stable identifier for the wire and the UI (branch on this, not on the
    /// message).
    pub fn code(&self) -> &'static str {
        match self {
            TunnelError::MissingBinary { .. } => "tunnel_missing_binary",
            TunnelError::Rejected { .. } => "tunnel_rejected",
            TunnelError::Config { .. } => "tunnel_config",
            TunnelError::ConsentRequired { .. } => "tunnel_consent_required",
            TunnelError::NotReady { .. } => "tunnel_not_ready",
            TunnelError::Connect { .. } => "tunnel_connect",
            TunnelError::Command { .. } => "tunnel_command",
            TunnelError::Timeout { .. } => "tunnel_timeout",
            TunnelError::Probe { .. } => "tunnel_probe",
            TunnelError::Io { .. } => "tunnel_io",
        }
    }

    /// Whether retrying cannot help until the user changes something.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            TunnelError::MissingBinary { .. }
                | TunnelError::Rejected { .. }
                | TunnelError::Config { .. }
                | TunnelError::ConsentRequired { .. }
        )
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        TunnelError::Io {
            context: context.into(),
            source: Arc::new(source),
        }
    }
}

/// How to install `tailscale`.
pub(crate) const INSTALL_TAILSCALE: &str = "Install Tailscale and sign in: on Debian/Ubuntu run \
`curl -fsSL https://tailscale.com/install.sh | sh` (it adds Tailscale's apt repository and installs \
the `tailscale` package), then `sudo tailscale up`; on macOS run `brew install tailscale` or install \
the Tailscale app (its CLI is /Applications/Tailscale.app/Contents/MacOS/Tailscale). \
See https://tailscale.com/download.";

/// How to install `cloudflared`.
pub(crate) const INSTALL_CLOUDFLARED: &str = "Install cloudflared: on Debian/Ubuntu add \
Cloudflare's apt repository (https://pkg.cloudflare.com) and run `sudo apt-get install cloudflared`, \
or install the .deb from https://github.com/cloudflare/cloudflared/releases; on macOS run \
`brew install cloudflared`. No Cloudflare account is needed for a quick tunnel.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_binary_names_the_program_and_both_platforms() {
        let err = TunnelError::MissingBinary {
            program: "cloudflared",
            install: INSTALL_CLOUDFLARED,
        };
        let text = err.to_string();
        assert!(text.starts_with("`cloudflared` was not found on this computer."));
        assert!(text.contains("Debian/Ubuntu") && text.contains("brew install cloudflared"));
        assert!(err.is_permanent());
        assert_eq!(err.code(), "tunnel_missing_binary");
    }

    #[test]
    fn timeout_message_includes_what_was_seen() {
        let err = TunnelError::Timeout {
            what: "waiting for the tunnel".into(),
            after: Duration::from_secs(2),
            detail: Some("last line".into()),
        };
        assert_eq!(err.to_string(), "waiting for the tunnel timed out after 2s: last line");
        assert!(!err.is_permanent());
    }
}
