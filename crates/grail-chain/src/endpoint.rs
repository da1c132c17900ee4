//! Where participants serve their APIs, as published on chain.
//!
//! On Subtensor an endpoint is the neuron's *axon* (`SubtensorModule::serve_axon`, stored
//! in `SubtensorModule::Axons`): an IP address as a `u128` with its version (`ip_type` 4
//! or 6), a port, a protocol tag and a version number. Commitments are not used for this:
//! a hotkey has one commitment field of at most 128 bytes and grail already spends it on
//! the bucket's read credentials.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use serde::{Deserialize, Serialize};

use crate::ChainError;

/// The axon `protocol` tag grail publishes (the Bittensor SDK's default; the chain does not
/// interpret it). grail validators serve plain HTTP on the published address.
pub const AXON_PROTOCOL: u8 = 4;

/// The version grail publishes with its endpoint: the protocol version, so a miner can
/// skip validators that speak another one.
pub const ENDPOINT_VERSION: u32 = grail_proto::params::PROTOCOL_VERSION;

/// Why an endpoint cannot be published ([`ChainError::UnpublishableEndpoint`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EndpointProblem {
    /// An unspecified address (`0.0.0.0`, `::`): a bind address.
    #[error("is a bind address, not one others can connect to (publish the public address)")]
    BindAddress,
    /// Port 0.
    #[error("has port 0")]
    PortZero,
    /// A loopback address, which Subtensor refuses (`InvalidIpAddress`).
    #[error("is a loopback address, which Subtensor refuses (InvalidIpAddress)")]
    Loopback,
}

/// A participant's published API address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// Public IP address and port.
    pub addr: SocketAddr,
    /// The version published with it ([`ENDPOINT_VERSION`] for grail nodes).
    pub version: u32,
}

impl Endpoint {
    /// A grail endpoint at `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            version: ENDPOINT_VERSION,
        }
    }

    /// The base URL of the HTTP API served there (`http://203.0.113.7:8080`,
    /// `http://[2001:db8::1]:8080`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The axon fields `(ip, ip_type)`: the address as an integer and its version (4 or 6).
    pub fn axon_ip(&self) -> (u128, u8) {
        match self.addr.ip() {
            IpAddr::V4(ip) => (u32::from(ip).into(), 4),
            IpAddr::V6(ip) => (u128::from(ip), 6),
        }
    }

    /// The endpoint an axon record describes; `None` for records that name no address
    /// (the chain's placeholder after `reset_axon`: ip 0), an unknown `ip_type`, an IPv4
    /// value over 32 bits, or port 0.
    pub fn from_axon(ip: u128, ip_type: u8, port: u16, version: u32) -> Option<Self> {
        let ip = match ip_type {
            4 => IpAddr::V4(Ipv4Addr::from(u32::try_from(ip).ok()?)),
            6 => IpAddr::V6(Ipv6Addr::from(ip)),
            _ => return None,
        };
        if ip.is_unspecified() || port == 0 {
            return None;
        }
        Some(Self {
            addr: SocketAddr::new(ip, port),
            version,
        })
    }

    /// Checks that the endpoint names an address others can connect to: not unspecified
    /// (`0.0.0.0`, `::`) and not port 0. A bind address such as `0.0.0.0:8080` is refused
    /// here: publish the machine's public address instead.
    ///
    /// # Errors
    /// [`ChainError::UnpublishableEndpoint`] with [`EndpointProblem::BindAddress`] or
    /// [`EndpointProblem::PortZero`].
    pub fn check_connectable(&self) -> Result<(), ChainError> {
        if self.addr.ip().is_unspecified() {
            return Err(self.unpublishable(EndpointProblem::BindAddress));
        }
        if self.addr.port() == 0 {
            return Err(self.unpublishable(EndpointProblem::PortZero));
        }
        Ok(())
    }

    fn unpublishable(&self, problem: EndpointProblem) -> ChainError {
        ChainError::UnpublishableEndpoint {
            addr: self.addr,
            problem,
        }
    }

    /// [`Self::check_connectable`] plus Subtensor's own refusals (`is_valid_ip_address`):
    /// `127.0.0.1`, `::1` and the all-ones IPv6 address (`InvalidIpAddress` on chain).
    ///
    /// # Errors
    /// [`Self::check_connectable`]'s, and [`ChainError::UnpublishableEndpoint`] with
    /// [`EndpointProblem::Loopback`].
    pub fn check_for_subtensor(&self) -> Result<(), ChainError> {
        self.check_connectable()?;
        let (ip, ip_type) = self.axon_ip();
        let refused = match ip_type {
            4 => ip == 0x7f00_0001,
            _ => ip == 1 || ip == u128::MAX,
        };
        if refused {
            return Err(self.unpublishable(EndpointProblem::Loopback));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axon_fields_round_trip_and_placeholders_are_no_endpoint() {
        for addr in ["203.0.113.7:8080", "[2001:db8::1]:443", "10.0.0.1:1"] {
            let e = Endpoint::new(addr.parse().unwrap());
            let (ip, ip_type) = e.axon_ip();
            assert_eq!(
                Endpoint::from_axon(ip, ip_type, e.addr.port(), e.version),
                Some(e)
            );
        }
        let (ip, _) = Endpoint::new("203.0.113.7:8080".parse().unwrap()).axon_ip();
        assert_eq!(ip, 0xcb00_7107);
        // reset_axon's placeholder, bad types and bad values.
        assert_eq!(Endpoint::from_axon(0, 4, 1, 0), None);
        assert_eq!(Endpoint::from_axon(ip, 5, 80, 0), None);
        assert_eq!(Endpoint::from_axon(1 << 40, 4, 80, 0), None);
        assert_eq!(Endpoint::from_axon(ip, 4, 0, 0), None);
        assert_eq!(
            Endpoint::new("[2001:db8::1]:80".parse().unwrap()).url(),
            "http://[2001:db8::1]:80"
        );
    }

    #[test]
    fn unreachable_addresses_are_refused() {
        let check = |a: &str| Endpoint::new(a.parse().unwrap()).check_for_subtensor();
        let problem = |a: &str| match check(a) {
            Err(ChainError::UnpublishableEndpoint { addr, problem }) => {
                assert_eq!(addr, a.parse().unwrap());
                problem
            }
            other => panic!("{a}: {other:?}"),
        };
        assert_eq!(problem("0.0.0.0:8080"), EndpointProblem::BindAddress);
        assert_eq!(problem("[::]:8080"), EndpointProblem::BindAddress);
        assert_eq!(problem("203.0.113.7:0"), EndpointProblem::PortZero);
        assert_eq!(problem("127.0.0.1:8080"), EndpointProblem::Loopback);
        assert_eq!(problem("[::1]:8080"), EndpointProblem::Loopback);
        assert!(check("203.0.113.7:8080").is_ok());
        // A local chain accepts loopback (everything runs on one machine).
        assert!(Endpoint::new("127.0.0.1:8080".parse().unwrap())
            .check_connectable()
            .is_ok());
    }
}
