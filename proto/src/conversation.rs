//! The conversation after authentication, for both roles: the Hello exchange, the
//! probe plan, the round-trip pings, the results and the report.
//!
//! Like [`crate::handshake`], these functions drive a [`Channel`] and hold no clock:
//! callers put deadlines around them.

use tokio::io::{AsyncRead, AsyncWrite};

use crate::channel::{Channel, ChannelError};
use crate::defaults::PROTOCOL_VERSION;
use crate::defaults::{MAX_PINGS, MAX_WITNESS};
use crate::handshake::{HandshakeError, recv, refuse, unexpected};
use crate::icmp::IcmpWitness;
use crate::msg::{Again, Hello, MAX_HELLO_ADDRESSES, Message, Ping, Reject, RejectCode, WitnessAsk};
use crate::plan::{ProbePlan, check_results};
use crate::vocab::ProbeResults;

/// Checks a received Hello against the protocol's limits.
fn checked(hello: Hello) -> Result<Hello, HandshakeError> {
    if hello.addresses.len() > MAX_HELLO_ADDRESSES {
        return Err(HandshakeError::TooManyAddresses { count: hello.addresses.len(), max: MAX_HELLO_ADDRESSES });
    }
    Ok(hello)
}

/// The peer sends its Hello first, then receives the agent's.
pub async fn hello_as_peer<R, W>(ch: &mut Channel<R, W>, ours: Hello) -> Result<Hello, HandshakeError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    ch.send(&Message::Hello(ours)).await?;
    match recv(ch).await? {
        Message::Hello(h) => match checked(h) {
            Ok(h) => Ok(h),
            Err(e) => Err(refuse(ch, e).await),
        },
        m => Err(refuse(ch, unexpected(&m, "Hello")).await),
    }
}

/// The agent receives the peer's Hello, then answers with its own.
pub async fn hello_as_agent<R, W>(ch: &mut Channel<R, W>, ours: Hello) -> Result<Hello, HandshakeError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let theirs = match recv(ch).await? {
        Message::Hello(h) => match checked(h) {
            Ok(h) => h,
            Err(e) => return Err(refuse(ch, e).await),
        },
        m => return Err(refuse(ch, unexpected(&m, "Hello")).await),
    };
    ch.send(&Message::Hello(ours)).await?;
    Ok(theirs)
}

/// Sends a Ping and waits for its Pong. The caller times the call.
pub async fn ping<R, W>(ch: &mut Channel<R, W>, nonce: u64) -> Result<(), HandshakeError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    ch.send(&Message::Ping(Ping { nonce })).await?;
    match recv(ch).await? {
        Message::Pong(p) if p.nonce == nonce => Ok(()),
        m => Err(refuse(ch, unexpected(&m, "Pong")).await),
    }
}

/// The agent answers Pings and Witness questions until the peer's Results arrive,
/// checks that they answer `plan`, and returns them with how many Pings it answered.
/// `witness` answers a [`Message::Witness`] (see [`crate::icmp`]). More than
/// [`MAX_PINGS`] pings or [`MAX_WITNESS`] questions, or results that do not match the
/// plan, are refused with the reason.
pub async fn await_results<R, W>(
    ch: &mut Channel<R, W>,
    plan: &ProbePlan,
    witness: impl Fn() -> Option<IcmpWitness>,
) -> Result<(ProbeResults, u32), HandshakeError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut answered = 0;
    let mut witnessed = 0;
    loop {
        match recv(ch).await? {
            Message::Ping(_) if answered >= MAX_PINGS => {
                return Err(refuse(ch, HandshakeError::TooManyPings { max: MAX_PINGS }).await);
            }
            Message::Ping(p) => {
                ch.send(&Message::Pong(p)).await?;
                answered += 1;
            }
            Message::Witness(_) if witnessed >= MAX_WITNESS => {
                return Err(refuse(ch, HandshakeError::TooManyWitness { max: MAX_WITNESS }).await);
            }
            Message::Witness(_) => {
                ch.send(&Message::Witnessed(witness())).await?;
                witnessed += 1;
            }
            Message::Results(r) => {
                return match check_results(plan, &r) {
                    Ok(()) => Ok((r, answered)),
                    Err(e) => Err(refuse(ch, e.into()).await),
                };
            }
            m => return Err(refuse(ch, unexpected(&m, "Ping, Witness or Results")).await),
        }
    }
}

/// The peer asks the agent mid-run whether its host sent or suppressed an ICMP error
/// since the plan. The caller puts a deadline around it.
pub async fn ask_witness<R, W>(ch: &mut Channel<R, W>) -> Result<Option<IcmpWitness>, HandshakeError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    ch.send(&Message::Witness(WitnessAsk)).await?;
    match recv(ch).await? {
        Message::Witnessed(q) => Ok(q),
        m => Err(refuse(ch, unexpected(&m, "Witnessed")).await),
    }
}

/// Receives the agent's probe plan.
pub async fn recv_plan<R, W>(ch: &mut Channel<R, W>) -> Result<ProbePlan, HandshakeError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    match recv(ch).await? {
        Message::Plan(p) => Ok(p),
        m => Err(refuse(ch, unexpected(&m, "Plan")).await),
    }
}

/// Receives the agent's report (its JSON text).
pub async fn recv_report<R, W>(ch: &mut Channel<R, W>) -> Result<String, HandshakeError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    match recv(ch).await? {
        Message::Report(r) => match r.json() {
            Ok(json) => Ok(json),
            Err(e) => Err(refuse(ch, e.into()).await),
        },
        m => Err(refuse(ch, unexpected(&m, "Report")).await),
    }
}

/// After a report, the agent waits for a watching peer's next round: `Some(round)` for
/// an [`Again`], `None` when the peer ended the conversation (closed its stream).
pub async fn await_again<R, W>(ch: &mut Channel<R, W>) -> Result<Option<u32>, HandshakeError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    match ch.recv().await {
        Ok(Message::Again(Again { round })) => Ok(Some(round)),
        Err(ChannelError::Closed) => Ok(None),
        Ok(Message::Reject(r)) => {
            Err(HandshakeError::Rejected { code: r.code, detail: crate::text::printable(&r.detail, 200) })
        }
        Ok(m) => Err(refuse(ch, unexpected(&m, "Again or the end")).await),
        Err(e) => Err(e.into()),
    }
}

/// The peer asks for round `round` and receives its plan.
pub async fn again<R, W>(ch: &mut Channel<R, W>, round: u32) -> Result<ProbePlan, HandshakeError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    ch.send(&Message::Again(Again { round })).await?;
    recv_plan(ch).await
}

/// Sends a typed refusal, ignoring send failures (the connection is being abandoned).
pub async fn reject<R, W>(ch: &mut Channel<R, W>, code: RejectCode, detail: &str)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let reject = Reject { version: PROTOCOL_VERSION, code, detail: detail.to_owned() };
    let _ = ch.send(&Message::Reject(reject)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::channel::pipe;

    #[tokio::test]
    async fn hello_plan_pings_results_and_report_follow_authentication() {
        use crate::msg::ReportJson;
        let (mut p, mut a) = pipe();
        let hello =
            |name: &str| Hello { name: name.into(), os: "linux".into(), software: "t".into(), addresses: vec![] };
        let plan = ProbePlan { session: [1; 16], key: [2; 32], probes: vec![], services: vec![] };
        let peer = async {
            let theirs = hello_as_peer(&mut p, hello("peer")).await.expect("hello");
            let plan = recv_plan(&mut p).await.expect("plan");
            for n in 0..3 {
                ping(&mut p, n).await.expect("pong");
            }
            let witnessed = ask_witness(&mut p).await.expect("witness");
            assert_eq!(witnessed, Some(IcmpWitness { sent: [1, 0], ..IcmpWitness::default() }), "the agent's answer");
            p.send(&Message::Results(ProbeResults { results: vec![], services: vec![] })).await.expect("results");
            let report = recv_report(&mut p).await.expect("report");
            (theirs.name, plan.session, report)
        };
        let agent = async {
            let theirs = hello_as_agent(&mut a, hello("agent")).await.expect("hello");
            a.send(&Message::Plan(plan.clone())).await.expect("plan");
            let quiet = || Some(IcmpWitness { sent: [1, 0], ..IcmpWitness::default() });
            let (results, pings) = await_results(&mut a, &plan, quiet).await.expect("results");
            a.send(&Message::Report(ReportJson::new("{}"))).await.expect("report");
            (theirs.name, results.results.len(), pings)
        };
        let ((peer_saw, session, report), (agent_saw, n, pings)) = tokio::join!(peer, agent);
        assert_eq!((peer_saw.as_str(), agent_saw.as_str(), pings, n), ("agent", "peer", 3, 0));
        assert_eq!((session, report.as_str()), ([1; 16], "{}"));
    }

    fn hello(name: &str, addresses: usize) -> Hello {
        let a = crate::msg::HelloAddress { ip: "198.51.100.1".parse().expect("ip"), interface: "eth0".into() };
        Hello { name: name.into(), os: "linux".into(), software: "t".into(), addresses: vec![a; addresses] }
    }

    #[tokio::test]
    async fn a_hello_with_too_many_addresses_is_refused_with_the_reason() {
        let (mut p, mut a) = pipe();
        let (theirs, ours) =
            tokio::join!(hello_as_peer(&mut p, hello("peer", 300)), hello_as_agent(&mut a, hello("a", 1)));
        assert!(
            matches!(ours, Err(HandshakeError::TooManyAddresses { count: 300, max: MAX_HELLO_ADDRESSES })),
            "{ours:?}"
        );
        match theirs {
            Err(HandshakeError::Rejected { code: RejectCode::Malformed, detail }) => {
                assert!(detail.contains("300 addresses"), "{detail}");
            }
            other => panic!("the peer should learn why: {other:?}"),
        }
    }

    #[tokio::test]
    async fn pings_beyond_the_limit_and_results_off_the_plan_are_refused() {
        let plan = ProbePlan { session: [1; 16], key: [2; 32], probes: vec![], services: vec![] };
        let (mut p, mut a) = pipe();
        let peer = async {
            for n in 0..u64::from(MAX_PINGS) {
                ping(&mut p, n).await.expect("answered");
            }
            ping(&mut p, 99).await
        };
        let (extra, agent) = tokio::join!(peer, await_results(&mut a, &plan, || None));
        assert!(matches!(agent, Err(HandshakeError::TooManyPings { .. })), "{agent:?}");
        assert!(matches!(extra, Err(HandshakeError::Rejected { code: RejectCode::Unexpected, .. })), "{extra:?}");

        let (mut p, mut a) = pipe();
        let invented = crate::vocab::ProbeResult {
            id: 0,
            outcome: crate::vocab::Outcome::Open,
            rtt_us: None,
            errno: None,
            attempts: 1,
            proven: false,
        };
        let results = ProbeResults { results: vec![invented; 3], services: vec![] };
        p.send(&Message::Results(results)).await.expect("send");
        let agent = await_results(&mut a, &plan, || None).await;
        assert!(matches!(agent, Err(HandshakeError::BadResults(_))), "{agent:?}");
    }

    #[tokio::test]
    async fn more_witness_questions_than_a_run_needs_are_refused() {
        let (mut p, mut a) = pipe();
        let plan = ProbePlan { session: [1; 16], key: [2; 32], probes: vec![], services: vec![] };
        let peer = async {
            for _ in 0..MAX_WITNESS {
                ask_witness(&mut p).await.expect("answered");
            }
            ask_witness(&mut p).await
        };
        let (extra, agent) = tokio::join!(peer, await_results(&mut a, &plan, || None));
        assert!(matches!(agent, Err(HandshakeError::TooManyWitness { .. })), "{agent:?}");
        assert!(extra.is_err(), "the peer is told: {extra:?}");
    }

    #[tokio::test]
    async fn a_watching_peer_asks_again_and_the_end_is_a_closed_stream() {
        let plan = ProbePlan { session: [1; 16], key: [2; 32], probes: vec![], services: vec![] };
        let (mut p, mut a) = pipe();
        let peer = async {
            let next = again(&mut p, 1).await.expect("plan of round 1");
            p.shutdown().await.expect("end");
            next.session
        };
        let agent = async {
            let first = await_again(&mut a).await.expect("again");
            a.send(&Message::Plan(plan.clone())).await.expect("plan");
            let end = await_again(&mut a).await.expect("end");
            (first, end)
        };
        let (session, (first, end)) = tokio::join!(peer, agent);
        assert_eq!((session, first, end), ([1; 16], Some(1), None));
    }
}
