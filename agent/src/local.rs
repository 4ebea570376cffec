//! `lanreach-agent --local`: the single-machine self-check. The same listeners, plan,
//! probe engine and report as with a peer, with this machine dialling its own
//! non-loopback addresses; those probes travel over `lo`, so for the checked ports the
//! firewall's configuration is read and evaluated for a packet from another host.

use std::time::Duration;

use lanreach_proto::addr::InterfaceKind;
use lanreach_proto::assemble::{ReportParts, assemble};
use lanreach_proto::defaults::{CONCURRENCY, PROBE_TIMEOUT_FLOOR};
use lanreach_proto::endpoint::engine::{self, EngineConfig, HostWitness};
use lanreach_proto::endpoint::host_name;
use lanreach_proto::endpoint::identity::Identity;
use lanreach_proto::endpoint::interfaces;
use lanreach_proto::report::{Mode, PeerInfo, Report};

use crate::cli::Config;
use crate::control::AgentError;
use crate::inside::{self, Checks};
use crate::listeners::Listeners;

/// Runs the self-check and returns its report.
pub(crate) async fn run(config: &Config) -> Result<Report, AgentError> {
    let (identity, _) = Identity::load_or_create(&config.state_dir, &host_name())?;
    let interfaces = interfaces::list().unwrap_or_default();
    let listeners = Listeners::open(&interfaces, config.ports)?;
    let targets: Vec<_> = interfaces
        .iter()
        .filter(|i| !matches!(i.kind, InterfaceKind::Loopback | InterfaceKind::LinkLocal))
        .map(|i| i.ip)
        .collect();
    let checks = Checks { ports: config.check.clone(), exposed: config.exposed };
    let own: Vec<u16> = listeners.specs().iter().map(|s| s.bind.port()).collect();
    let ports = checks.ports_to_probe(&own).await;
    let plan = inside::new_plan(listeners.specs(), &targets, false, &ports);
    listeners.register(plan.session, plan.key);
    let attempt_timeout: Duration = config.timeout.unwrap_or(PROBE_TIMEOUT_FLOOR);
    let watch = crate::conntrack::watch(inside::conntrack_ports(&plan));
    let engine_config = EngineConfig { attempt_timeout, concurrency: CONCURRENCY };
    let results = engine::run(&plan, engine_config, &targets, &HostWitness::start()).await;
    let hits = listeners.finish(&plan.session);
    let conntrack = watch.finish().await;
    let services = inside::service_inputs(&ports, &plan, &results, &mut None, true, false).await;
    let firewall = inside::firewall(&ports, &mut None, true).await;
    let agent = inside::agent_info(&config.name, identity.id, &interfaces);
    let peer = PeerInfo {
        name: config.name.clone(),
        id: identity.id.short(),
        seen_from: None,
        dialled: None,
        arrival_interface: None,
        addresses: targets,
        probe_sources: Vec::new(),
    };
    Ok(assemble(ReportParts {
        mode: Mode::Local,
        agent,
        peer,
        listeners: listeners.specs(),
        plan: &plan,
        results: &results,
        hits: &hits,
        services: &services,
        conntrack: &conntrack,
        wsl2: inside::wsl2(),
        firewall: &firewall,
    }))
}
