//! Our iptables chains, kept in line with the state: the rules are rendered from it
//! ([`super::nat::render`]) and applied with one `iptables-restore` when they changed.
use super::{nat, NetworkError, NetworkService, Shared};

impl NetworkService {
    /// Brings our iptables chains in line with the state now.
    pub(super) async fn sync_firewall(&self) -> Result<(), NetworkError> {
        self.shared.sync_firewall().await
    }

    /// The same in the background, for removals: a rule left a few milliseconds longer only
    /// points at an address nobody has any more, and `docker run --rm` does not wait for it.
    pub(super) fn schedule_firewall(&self) {
        let shared = self.shared.clone();
        self.shared.tasks.spawn(async move {
            if let Err(e) = shared.sync_firewall().await {
                tracing::warn!(error = %e, "firewall update failed");
            }
        });
    }
}

impl Shared {
    /// One `iptables-restore` with the rules of the current state, skipped when they equal the
    /// rules last applied. Serialised, so the last caller always applies the latest state.
    pub(super) async fn sync_firewall(&self) -> Result<(), NetworkError> {
        if !self.firewall {
            return Ok(());
        }
        let mut last = self.fw.lock().await;
        let rules = {
            let st = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let nets: Vec<nat::NetRules> = st
                .networks
                .values()
                .map(|s| nat::NetRules {
                    bridge: s.net.bridge.clone(),
                    subnet: s.net.subnet.clone(),
                    internal: s.net.internal,
                    masquerade: s.net.masquerade(),
                    icc: s.net.icc(),
                })
                .collect();
            let ports: Vec<nat::PortRule> = st
                .sandboxes
                .values()
                .flat_map(|sb| sb.ports.iter())
                .map(|p| nat::PortRule {
                    proto: p.proto.clone(),
                    host_ip: (!p.host_ip.is_unspecified()).then_some(p.host_ip),
                    host_port: p.host_port,
                    ip: p.container_ip,
                    port: p.container_port,
                })
                .collect();
            nat::render(&self.tag, &nets, &ports)
        };
        if *last == rules {
            return Ok(());
        }
        nat::restore(&*self.iptables, &rules).await?;
        *last = rules;
        Ok(())
    }
}
