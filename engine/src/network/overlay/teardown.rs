//! A clean engine stop: the overlay networks without a container on this node leave nothing on
//! the host (their VXLAN device, bridge and iptables rules go; the network's record stays, so the
//! next start sets it up again). Networks with running containers keep everything, so those
//! containers keep talking to the other nodes while the engine is away.
use super::Overlay;
use crate::network::Shared;
use std::collections::BTreeSet;

impl Overlay {
    /// Called once by `NetworkService::shutdown`. Removes the devices of unused overlay networks and stops applying store changes. The
    /// engine's lease is revoked when no container here is on an overlay network (nothing of
    /// this node stays in the store); otherwise it runs out by itself.
    pub(crate) async fn shutdown(&self, shared: &Shared) {
        let mut installed = self.installed.lock().await;
        self.stopped.store(true, std::sync::atomic::Ordering::Relaxed);
        let used: BTreeSet<String> = {
            let st = shared.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            st.sandboxes.values().flat_map(|sb| sb.endpoints.iter().map(|e| e.network_id.clone())).collect()
        };
        let h = match shared.netlink.host() {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(error = %e, "overlay devices not removed at shutdown");
                return;
            }
        };
        let unused: Vec<String> = installed.keys().filter(|id| !used.contains(*id)).cloned().collect();
        for id in &unused {
            let Some(inst) = installed.remove(id) else { continue };
            if let Err(e) = h.delete_link(&inst.vxlan).await {
                tracing::warn!(vxlan = %inst.vxlan, error = %e, "vxlan not removed at shutdown");
            }
            let br = shared.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner).networks.remove(id).map(|s| s.net.bridge);
            if let Some(br) = br {
                if let Err(e) = h.delete_link(&br).await {
                    tracing::warn!(bridge = %br, error = %e, "overlay bridge not removed at shutdown");
                }
            }
            tracing::info!(network = %id, vxlan = %inst.vxlan, "overlay network without containers here: devices removed");
        }
        let busy = installed.keys().any(|id| used.contains(id));
        drop(installed);
        if !unused.is_empty() {
            if let Err(e) = shared.sync_firewall().await {
                tracing::warn!(error = %e, "firewall update at shutdown failed");
            }
        }
        if !busy {
            if let Err(e) = self.kv.revoke(self.lease()).await {
                tracing::warn!(error = %e, "cluster store lease not revoked at shutdown");
            }
        }
    }
}
