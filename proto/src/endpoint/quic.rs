//! QUIC endpoints and their TLS 1.3 configuration.
//!
//! Both sides present self-signed certificates. The verifiers accept any well-formed
//! certificate (who it belongs to is decided by the pins or by pairing, above TLS) but
//! always check the TLS 1.3 handshake signature with the certificate's key, so a
//! copied certificate without its private key cannot pass.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};

use super::identity::{Identity, key_id_of};
use crate::defaults::{ALPN, IDLE_TIMEOUT, INITIAL_RTT, KEEP_ALIVE, RECEIVE_WINDOW};
use crate::id::KeyId;
use crate::pairing::{Binding, EXPORTER_LABEL};

/// Server name the peer puts in its ClientHello; the agent ignores it.
pub const SERVER_NAME: &str = "lanreach";

/// Why a TLS/QUIC configuration or connection property is unusable.
#[derive(Debug, thiserror::Error)]
pub enum QuicError {
    /// rustls refused the configuration.
    #[error("bad TLS configuration")]
    Tls(#[from] rustls::Error),
    /// The provider lacks the QUIC initial cipher suite.
    #[error("bad TLS configuration")]
    InitialSuite(#[from] quinn::crypto::rustls::NoInitialCipherSuite),
    /// The other side presented no certificate.
    #[error("the other side presented no certificate")]
    NoCertificate,
    /// The other side's certificate does not parse.
    #[error("the other side's certificate is malformed")]
    BadCertificate(#[source] webpki::Error),
    /// Keying material could not be exported.
    #[error("cannot export keying material from the TLS session")]
    Exporter,
    /// A UDP socket could not be set up.
    #[error("cannot open a UDP socket on {addr}")]
    Socket {
        /// The address.
        addr: SocketAddr,
        /// What the OS said.
        source: std::io::Error,
    },
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn parseable(cert: &CertificateDer<'_>) -> Result<(), rustls::Error> {
    key_id_of(cert).map(|_| ()).map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))
}

fn tls12_refused() -> Result<HandshakeSignatureValid, rustls::Error> {
    Err(rustls::Error::General("TLS 1.2 is not offered".into()))
}

/// Accepts any well-formed server certificate; checks handshake signatures.
#[derive(Debug)]
struct AnyServerCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyServerCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        parseable(end_entity)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        tls12_refused()
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Requires a well-formed client certificate; checks handshake signatures.
#[derive(Debug)]
struct AnyClientCert(Arc<CryptoProvider>);

impl ClientCertVerifier for AnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        parseable(end_entity)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        tls12_refused()
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Which end of the control channel a transport configuration is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// The agent accepts the peer's one stream.
    Agent,
    /// The peer opens it; the agent never opens streams.
    Peer,
}

/// QUIC transport limits sized to the protocol: one bidirectional stream opened by the
/// peer, no unidirectional streams, no datagrams, and small receive windows, so a
/// connection (authenticated or not) can make the other side buffer at most
/// [`RECEIVE_WINDOW`] bytes. quinn's defaults (100 + 100 streams of 1.25 MB each, no
/// connection-wide cap) let one hostile connection take hundreds of megabytes.
fn transport(role: Role) -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.keep_alive_interval(Some(KEEP_ALIVE));
    // IDLE_TIMEOUT is far below the 2^62 ms limit: the conversion cannot fail.
    t.max_idle_timeout(quinn::IdleTimeout::try_from(IDLE_TIMEOUT).ok());
    let streams: u32 = if role == Role::Agent { 1 } else { 0 };
    t.max_concurrent_bidi_streams(streams.into());
    t.max_concurrent_uni_streams(0u32.into());
    t.datagram_receive_buffer_size(None);
    t.stream_receive_window(RECEIVE_WINDOW.into());
    t.receive_window(RECEIVE_WINDOW.into());
    t.send_window(u64::from(RECEIVE_WINDOW) * 2);
    // Before the first sample, a LAN's round trip rather than QUIC's 333 ms for the
    // Internet: a lost Initial or Handshake packet is sent again after ~150 ms, not ~1 s.
    t.initial_rtt(INITIAL_RTT);
    Arc::new(t)
}

/// The agent's QUIC server configuration: TLS 1.3 only, ALPN `lanreach/1`, client
/// certificate required.
pub fn server_config(identity: &Identity) -> Result<quinn::ServerConfig, QuicError> {
    let provider = provider();
    let mut tls = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(Arc::new(AnyClientCert(provider)))
        .with_single_cert(vec![identity.cert.clone()], identity.key())?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(transport(Role::Agent));
    Ok(config)
}

/// The peer's QUIC client configuration: TLS 1.3 only, ALPN `lanreach/1`, presenting
/// the peer's certificate.
pub fn client_config(identity: &Identity) -> Result<quinn::ClientConfig, QuicError> {
    let provider = provider();
    let mut tls = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServerCert(provider)))
        .with_client_auth_cert(vec![identity.cert.clone()], identity.key())?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(transport(Role::Peer));
    Ok(config)
}

/// Whether the other side closed the connection with application close `code`.
fn closed_with(c: &quinn::ConnectionError, code: u32) -> bool {
    matches!(c, quinn::ConnectionError::ApplicationClosed(close) if close.error_code == quinn::VarInt::from_u32(code))
}

/// Whether the peer closed this connection unused: it reached the agent at another
/// address first ([`close::UNUSED`](crate::defaults::close::UNUSED)).
pub fn closed_unused(c: &quinn::ConnectionError) -> bool {
    closed_with(c, crate::defaults::close::UNUSED)
}

/// Whether `err` (or one of its causes) is the other side closing the connection
/// because its user stopped it ([`close::SHUTDOWN`](crate::defaults::close::SHUTDOWN)).
pub fn stopped_by_other_side(err: &(dyn std::error::Error + 'static)) -> bool {
    let stopped = |c: &quinn::ConnectionError| closed_with(c, crate::defaults::close::SHUTDOWN);
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cause {
        // An io::Error hides the error it wraps from `source()`: look inside.
        let inner = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map(|i| i as &(dyn std::error::Error + 'static));
        for candidate in [Some(e), inner].into_iter().flatten() {
            if let Some(c) = candidate.downcast_ref::<quinn::ConnectionError>()
                && stopped(c)
            {
                return true;
            }
            if let Some(quinn::ReadError::ConnectionLost(c)) = candidate.downcast_ref::<quinn::ReadError>()
                && stopped(c)
            {
                return true;
            }
            if let Some(quinn::WriteError::ConnectionLost(c)) = candidate.downcast_ref::<quinn::WriteError>()
                && stopped(c)
            {
                return true;
            }
        }
        cause = e.source();
    }
    false
}

/// A UDP socket bound to `addr`; IPv6 sockets get IPV6_V6ONLY so that `[::]` and
/// `0.0.0.0` can be bound side by side.
pub fn udp_socket(addr: SocketAddr) -> Result<UdpSocket, QuicError> {
    use socket2::{Domain, Protocol, Socket, Type};
    let err = |source| QuicError::Socket { addr, source };
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP)).map_err(err)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true).map_err(err)?;
    }
    socket.bind(&addr.into()).map_err(err)?;
    Ok(socket.into())
}

/// A QUIC endpoint on `socket`, serving with `server` when given.
pub fn endpoint(socket: UdpSocket, server: Option<quinn::ServerConfig>) -> std::io::Result<quinn::Endpoint> {
    let runtime = quinn::default_runtime()
        .ok_or_else(|| std::io::Error::other("no async runtime for QUIC (must run inside tokio)"))?;
    quinn::Endpoint::new(quinn::EndpointConfig::default(), server, socket, runtime)
}

/// The key ID of the certificate the other side presented.
pub fn remote_key_id(conn: &quinn::Connection) -> Result<KeyId, QuicError> {
    let certs = conn
        .peer_identity()
        .and_then(|any| any.downcast::<Vec<CertificateDer<'static>>>().ok())
        .ok_or(QuicError::NoCertificate)?;
    let first = certs.first().ok_or(QuicError::NoCertificate)?;
    key_id_of(first).map_err(QuicError::BadCertificate)
}

/// What binds a pairing to this connection: both key IDs and the TLS exporter value.
pub fn binding(conn: &quinn::Connection, agent: KeyId, peer: KeyId) -> Result<Binding, QuicError> {
    let mut exporter = [0u8; 32];
    conn.export_keying_material(&mut exporter, EXPORTER_LABEL, b"").map_err(|_| QuicError::Exporter)?;
    Ok(Binding { agent, peer, exporter })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Real QUIC on loopback with both sides' configurations: the peer may open exactly
    /// one bidirectional stream and no unidirectional one; the agent may open none, so
    /// a hostile agent cannot make a peer buffer streams either.
    #[tokio::test]
    async fn each_side_may_open_only_the_streams_the_protocol_needs() {
        let dir = tempfile::tempdir().expect("dir");
        let (agent_id, _) = Identity::load_or_create(&dir.path().join("a"), "agent").expect("identity");
        let (peer_id, _) = Identity::load_or_create(&dir.path().join("p"), "peer").expect("identity");
        let loopback: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        let server = endpoint(udp_socket(loopback).expect("socket"), Some(server_config(&agent_id).expect("server")))
            .expect("endpoint");
        let addr = server.local_addr().expect("addr");
        let mut client = endpoint(udp_socket(loopback).expect("socket"), None).expect("endpoint");
        client.set_default_client_config(client_config(&peer_id).expect("client"));
        let (peer_side, agent_side) = tokio::join!(
            async { client.connect(addr, SERVER_NAME).expect("connect").await.expect("connected") },
            async { server.accept().await.expect("incoming").await.expect("accepted") },
        );
        let short = Duration::from_millis(300);
        let first = tokio::time::timeout(short, peer_side.open_bi()).await;
        assert!(matches!(first, Ok(Ok(_))), "the peer opens the control stream");
        assert!(tokio::time::timeout(short, peer_side.open_bi()).await.is_err(), "a second stream waits forever");
        assert!(tokio::time::timeout(short, peer_side.open_uni()).await.is_err(), "no unidirectional streams");
        assert!(tokio::time::timeout(short, agent_side.open_bi()).await.is_err(), "the agent opens no streams");
        assert!(tokio::time::timeout(short, agent_side.open_uni()).await.is_err(), "the agent opens no streams");
        assert!(agent_side.send_datagram(vec![0u8; 100].into()).is_err(), "no datagrams");
    }
}
