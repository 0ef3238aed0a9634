//! Listeners and roles as Kafka's KRaft configuration names them: `process.roles`, `listeners`,
//! `advertised.listeners`, `listener.security.protocol.map`, `controller.listener.names`,
//! `inter.broker.listener.name` and `controller.quorum.voters`, parsed and checked together
//! once every property is known (Kafka's `KafkaConfig` rules), so that a KRaft
//! `server.properties` starts a node unchanged.

use std::collections::{BTreeMap, BTreeSet};

/// A listener's security protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityProtocol {
    /// PLAINTEXT.
    Plaintext,
    /// SSL.
    Ssl,
    /// SASL_PLAINTEXT.
    SaslPlaintext,
    /// SASL_SSL.
    SaslSsl,
}

impl SecurityProtocol {
    fn parse(s: &str) -> Option<SecurityProtocol> {
        Some(match s.trim().to_ascii_uppercase().as_str() {
            "PLAINTEXT" => SecurityProtocol::Plaintext,
            "SSL" => SecurityProtocol::Ssl,
            "SASL_PLAINTEXT" => SecurityProtocol::SaslPlaintext,
            "SASL_SSL" => SecurityProtocol::SaslSsl,
            _ => return None,
        })
    }

    /// Kafka's id of the protocol (`SecurityProtocol.id`), as broker registrations carry it.
    pub fn id(self) -> i16 {
        match self {
            SecurityProtocol::Plaintext => 0,
            SecurityProtocol::Ssl => 1,
            SecurityProtocol::SaslPlaintext => 2,
            SecurityProtocol::SaslSsl => 3,
        }
    }
}

/// One listener: where it binds, what it advertises, its protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// Listener name, upper case (`PLAINTEXT`, `CONTROLLER`, `INTERNAL`, …).
    pub name: String,
    /// Bind host; empty means every interface.
    pub host: String,
    /// Bind port (0: any free port).
    pub port: u16,
    /// Security protocol from `listener.security.protocol.map`.
    pub protocol: SecurityProtocol,
    /// Host clients are told to connect to.
    pub advertised_host: String,
    /// Port clients are told to connect to.
    pub advertised_port: u16,
}

/// A controller of the quorum (`controller.quorum.voters`: `id@host:port`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voter {
    /// The controller's `node.id`.
    pub id: i32,
    /// Host of its controller listener.
    pub host: String,
    /// Port of its controller listener.
    pub port: u16,
}

/// The node's roles and listeners, resolved and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeListeners {
    /// Runs the broker role.
    pub broker: bool,
    /// Runs the controller role.
    pub controller: bool,
    /// Every listener, in the order `listeners` gives them.
    pub listeners: Vec<Listener>,
    /// `controller.listener.names`.
    pub controller_names: Vec<String>,
    /// `inter.broker.listener.name`.
    pub inter_broker: String,
    /// `controller.quorum.voters`, by id (empty: this node alone, the zero-config default).
    pub voters: BTreeMap<i32, Voter>,
}

impl NodeListeners {
    /// Listeners that serve clients (every one that is not a controller listener).
    pub fn client(&self) -> impl Iterator<Item = &Listener> {
        self.listeners
            .iter()
            .filter(|l| !self.controller_names.contains(&l.name))
    }

    /// Whether `name` is a controller listener.
    pub fn is_controller(&self, name: &str) -> bool {
        self.controller_names.iter().any(|n| n == name)
    }
}

/// The raw values, as set; `None` when not set.
#[derive(Debug, Clone, Default)]
pub struct ListenerSettings {
    /// `process.roles`.
    pub process_roles: Option<String>,
    /// `listeners`.
    pub listeners: Option<String>,
    /// `advertised.listeners`.
    pub advertised: Option<String>,
    /// `listener.security.protocol.map`.
    pub protocol_map: Option<String>,
    /// `controller.listener.names`.
    pub controller_names: Option<String>,
    /// `inter.broker.listener.name`.
    pub inter_broker: Option<String>,
    /// `controller.quorum.voters`.
    pub voters: Option<String>,
    /// `controller.quorum.bootstrap.servers` (KIP-853: the voters are found, not listed).
    pub bootstrap_servers: Option<String>,
}

/// Kafka's default `listener.security.protocol.map`.
const DEFAULT_PROTOCOL_MAP: &str =
    "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL";
/// Sluice's default client listener (Kafka's is `PLAINTEXT://:9092` on every interface; a
/// zero-configuration node stays on loopback).
pub const DEFAULT_LISTENERS: &str = "PLAINTEXT://127.0.0.1:9092";

/// A problem with the listener settings: (property, value, reason).
pub type ListenerError = (&'static str, String, String);

fn err(name: &'static str, value: &Option<String>, why: impl Into<String>) -> ListenerError {
    (name, value.clone().unwrap_or_default(), why.into())
}

/// `NAME://host:port` entries.
fn parse_endpoints(
    name: &'static str,
    value: &Option<String>,
) -> Result<Vec<(String, String, u16)>, ListenerError> {
    let text = value.as_deref().unwrap_or_default();
    let mut out = Vec::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (listener, rest) = entry
            .split_once("://")
            .ok_or_else(|| err(name, value, format!("`{entry}` is not NAME://host:port")))?;
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| err(name, value, format!("`{entry}` has no port")))?;
        let port: u16 = port
            .parse()
            .map_err(|_| err(name, value, format!("`{entry}` has a bad port")))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let listener = listener.trim().to_ascii_uppercase();
        if out
            .iter()
            .any(|(n, _, _): &(String, String, u16)| *n == listener)
        {
            return Err(err(
                name,
                value,
                format!("listener {listener} is given twice"),
            ));
        }
        out.push((listener, host, port));
    }
    Ok(out)
}

fn parse_voters(value: &Option<String>) -> Result<BTreeMap<i32, Voter>, ListenerError> {
    const NAME: &str = "controller.quorum.voters";
    let mut voters = BTreeMap::new();
    let text = value.as_deref().unwrap_or_default();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let bad = || err(NAME, value, format!("`{entry}` is not id@host:port"));
        let (id, address) = entry.split_once('@').ok_or_else(bad)?;
        let (host, port) = address.rsplit_once(':').ok_or_else(bad)?;
        let id: i32 = id.trim().parse().map_err(|_| bad())?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        if voters.insert(id, Voter { id, host, port }).is_some() {
            return Err(err(NAME, value, format!("voter {id} is given twice")));
        }
    }
    Ok(voters)
}

fn parse_roles(value: &Option<String>) -> Result<(bool, bool), ListenerError> {
    let Some(text) = value else {
        return Ok((true, true));
    };
    let roles: BTreeSet<&str> = text
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .collect();
    if roles.is_empty() || roles.iter().any(|r| *r != "broker" && *r != "controller") {
        return Err(err(
            "process.roles",
            value,
            "expected broker, controller, or both",
        ));
    }
    Ok((roles.contains("broker"), roles.contains("controller")))
}

fn parse_protocol_map(
    value: &Option<String>,
) -> Result<BTreeMap<String, SecurityProtocol>, ListenerError> {
    let text = value.as_deref().unwrap_or(DEFAULT_PROTOCOL_MAP);
    let mut map = BTreeMap::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, protocol) = entry.split_once(':').ok_or_else(|| {
            err(
                "listener.security.protocol.map",
                value,
                format!("`{entry}` is not NAME:PROTOCOL"),
            )
        })?;
        let protocol = SecurityProtocol::parse(protocol).ok_or_else(|| {
            err(
                "listener.security.protocol.map",
                value,
                format!("unknown security protocol in `{entry}`"),
            )
        })?;
        map.insert(name.trim().to_ascii_uppercase(), protocol);
    }
    Ok(map)
}

impl ListenerSettings {
    /// Resolves and checks the settings as Kafka does.
    pub fn resolve(&self) -> Result<NodeListeners, ListenerError> {
        let (broker, controller) = parse_roles(&self.process_roles)?;
        let roles_set = self.process_roles.is_some();
        let listeners_value = self
            .listeners
            .clone()
            .or_else(|| Some(DEFAULT_LISTENERS.to_string()));
        let bound = parse_endpoints("listeners", &listeners_value)?;
        if bound.is_empty() {
            return Err(err("listeners", &listeners_value, "no listener given"));
        }
        let advertised = parse_endpoints("advertised.listeners", &self.advertised)?;
        let map = parse_protocol_map(&self.protocol_map)?;
        let controller_names: Vec<String> = self
            .controller_names
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .map(|n| n.trim().to_ascii_uppercase())
            .filter(|n| !n.is_empty())
            .collect();
        let mut listeners = Vec::with_capacity(bound.len());
        for (name, host, port) in &bound {
            let protocol = *map.get(name).ok_or_else(|| {
                err(
                    "listener.security.protocol.map",
                    &self.protocol_map,
                    format!("No security protocol defined for listener {name}"),
                )
            })?;
            let (advertised_host, advertised_port) = advertised
                .iter()
                .find(|(n, _, _)| n == name)
                .map(|(_, h, p)| (h.clone(), *p))
                .unwrap_or_else(|| (advertised_default(host), *port));
            listeners.push(Listener {
                name: name.clone(),
                host: host.clone(),
                port: *port,
                protocol,
                advertised_host,
                advertised_port,
            });
        }
        for (name, _, _) in &advertised {
            if !bound.iter().any(|(n, _, _)| n == name) {
                return Err(err(
                    "advertised.listeners",
                    &self.advertised,
                    format!("listener {name} is advertised but not in `listeners`"),
                ));
            }
        }
        let inter_broker = self
            .inter_broker
            .as_deref()
            .map(|n| n.trim().to_ascii_uppercase())
            .unwrap_or_else(|| "PLAINTEXT".to_string());
        let node = NodeListeners {
            broker,
            controller,
            listeners,
            controller_names,
            inter_broker,
            voters: parse_voters(&self.voters)?,
        };
        node.check(self, roles_set)?;
        Ok(node)
    }
}

/// A listener bound to every interface is advertised on loopback (the zero-config default).
fn advertised_default(host: &str) -> String {
    if host.is_empty() || host == "0.0.0.0" || host == "::" {
        "127.0.0.1".to_string()
    } else {
        host.to_string()
    }
}

impl NodeListeners {
    /// Kafka's cross-property rules.
    fn check(&self, s: &ListenerSettings, roles_set: bool) -> Result<(), ListenerError> {
        let names: Vec<&str> = self.listeners.iter().map(|l| l.name.as_str()).collect();
        if roles_set && self.controller {
            if !self
                .controller_names
                .iter()
                .any(|n| names.contains(&n.as_str()))
            {
                return Err(err(
                    "controller.listener.names",
                    &s.controller_names,
                    "must contain at least one value appearing in the 'listeners' configuration \
                     when running the KRaft controller role",
                ));
            }
            if self.voters.is_empty() && s.bootstrap_servers.is_none() {
                return Err(err(
                    "controller.quorum.voters",
                    &s.voters,
                    "a controller needs controller.quorum.voters (id@host:port,…) or \
                     controller.quorum.bootstrap.servers",
                ));
            }
        }
        if roles_set && !self.controller {
            if let Some(n) = self
                .controller_names
                .iter()
                .find(|n| names.contains(&n.as_str()))
            {
                return Err(err(
                    "listeners",
                    &s.listeners,
                    format!(
                        "the listeners must not contain the controller listener {n} when \
                         running only the broker role"
                    ),
                ));
            }
            if self.voters.is_empty() && s.bootstrap_servers.is_none() {
                return Err(err(
                    "controller.quorum.voters",
                    &s.voters,
                    "a broker needs controller.quorum.voters or \
                     controller.quorum.bootstrap.servers to find the controller",
                ));
            }
        }
        if self.broker {
            if self.client().next().is_none() {
                return Err(err(
                    "listeners",
                    &s.listeners,
                    "a broker needs a listener that is not a controller listener",
                ));
            }
            if roles_set && !self.client().any(|l| l.name == self.inter_broker) {
                return Err(err(
                    "inter.broker.listener.name",
                    &s.inter_broker,
                    format!(
                        "{} must be a listener name defined in `listeners` and not a \
                         controller listener",
                        self.inter_broker
                    ),
                ));
            }
        }
        if let Some(l) = self
            .listeners
            .iter()
            .find(|l| l.protocol != SecurityProtocol::Plaintext)
        {
            return Err(err(
                "listeners",
                &s.listeners,
                format!(
                    "listener {} uses {:?}; only PLAINTEXT listeners are served yet (TLS and \
                     SASL come with the security work)",
                    l.name, l.protocol
                ),
            ));
        }
        let mut ports = BTreeSet::new();
        for l in &self.listeners {
            if l.port != 0 && !ports.insert(l.port) {
                return Err(err(
                    "listeners",
                    &s.listeners,
                    format!("port {} is used by two listeners", l.port),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> ListenerSettings {
        let mut s = ListenerSettings::default();
        for (k, v) in pairs {
            let v = Some(v.to_string());
            match *k {
                "process.roles" => s.process_roles = v,
                "listeners" => s.listeners = v,
                "advertised.listeners" => s.advertised = v,
                "listener.security.protocol.map" => s.protocol_map = v,
                "controller.listener.names" => s.controller_names = v,
                "inter.broker.listener.name" => s.inter_broker = v,
                "controller.quorum.voters" => s.voters = v,
                "controller.quorum.bootstrap.servers" => s.bootstrap_servers = v,
                _ => panic!("{k}"),
            }
        }
        s
    }

    #[test]
    fn the_default_is_one_combined_node_on_loopback() {
        let n = settings(&[]).resolve().unwrap();
        assert!(n.broker && n.controller);
        assert_eq!(n.listeners.len(), 1);
        assert_eq!(n.listeners[0].advertised_host, "127.0.0.1");
        assert_eq!(n.listeners[0].port, 9092);
        assert!(n.voters.is_empty());
    }

    #[test]
    fn a_kraft_combined_server_properties_resolves() {
        let n = settings(&[
            ("process.roles", "broker,controller"),
            ("listeners", "PLAINTEXT://:9092,CONTROLLER://:9093"),
            ("advertised.listeners", "PLAINTEXT://localhost:9092"),
            ("controller.listener.names", "CONTROLLER"),
            ("inter.broker.listener.name", "PLAINTEXT"),
            (
                "listener.security.protocol.map",
                "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            ),
            (
                "controller.quorum.voters",
                "1@localhost:9093,2@h2:9093,3@[::1]:9093",
            ),
        ])
        .resolve()
        .unwrap();
        assert_eq!(
            n.client().map(|l| l.name.as_str()).collect::<Vec<_>>(),
            ["PLAINTEXT"]
        );
        assert_eq!(n.listeners[0].advertised_host, "localhost");
        assert!(n.is_controller("CONTROLLER"));
        assert_eq!(n.voters.len(), 3);
        assert_eq!(n.voters[&3].host, "::1");
    }

    #[test]
    fn kafkas_cross_property_rules_are_enforced() {
        let bad = |pairs: &[(&str, &str)], what: &str| {
            let e = settings(pairs).resolve().unwrap_err();
            assert!(e.2.contains(what), "{e:?}");
        };
        bad(&[("process.roles", "broker,zookeeper")], "expected broker");
        bad(
            &[
                ("process.roles", "broker,controller"),
                ("listeners", "PLAINTEXT://:9092,CONTROLLER://:9093"),
                ("controller.listener.names", "CONTROLLER"),
            ],
            "controller.quorum.bootstrap.servers",
        );
        bad(
            &[
                ("process.roles", "controller"),
                ("listeners", "CONTROLLER://:9093"),
                ("controller.quorum.voters", "1@h:9093"),
            ],
            "at least one value",
        );
        bad(
            &[
                ("process.roles", "broker"),
                ("listeners", "PLAINTEXT://:9092,CONTROLLER://:9093"),
                ("controller.listener.names", "CONTROLLER"),
                ("controller.quorum.voters", "1@h:9093"),
            ],
            "must not contain the controller listener",
        );
        bad(&[("listeners", "INTERNAL://:9092")], "No security protocol");
        bad(&[("listeners", "SSL://:9092")], "only PLAINTEXT");
        bad(
            &[("listeners", "PLAINTEXT://:9092,CONTROLLER://:9092")],
            "two listeners",
        );
        bad(
            &[("advertised.listeners", "OTHER://h:1")],
            "not in `listeners`",
        );
        bad(&[("controller.quorum.voters", "1@h")], "id@host:port");
        bad(&[("controller.quorum.voters", "1@h:1,1@g:2")], "twice");
    }
}
